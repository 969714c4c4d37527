"""Helpers for feeding the pure core scripted events with explicit times (no clock anywhere)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from device.config import Config, core_config
from device.core import commands as cmd
from device.core import events as ev
from device.core.machine import step
from device.core.states import Spine, State, initial

DEFAULTS = core_config(Config())
"""The core's parameters as the default settings give them (a CoreConfig is only ever built from settings)."""
CONFIG = replace(
    DEFAULTS,
    earcons=False,  # the scripted turns read clearer without chimes; tests/test_core_earcons.py has them on
)


@dataclass
class Driver:
    spine: Spine = field(default_factory=lambda: initial(CONFIG))
    history: list[tuple[int, ev.Event, str, tuple[cmd.Command, ...]]] = field(default_factory=list)

    def state(self) -> State:
        """The current state, read afresh (a call, so a type check narrowed by an earlier assert does not stick)."""
        return self.spine.state

    def feed(self, event: ev.Event, now: int) -> tuple[cmd.Command, ...]:
        self.spine, commands = step(self.spine, event, now)
        self.history.append((now, event, type(self.spine.state).__name__, commands))
        return commands


def chunk(turn: int, seq: int, text: str, word_samples: int = 1000) -> ev.TtsChunkReady:
    """A synthesised sentence whose words each take `word_samples`."""
    n = len(text.split())
    return ev.TtsChunkReady(turn, seq, text, n * word_samples, tuple((i + 1) * word_samples for i in range(n)))
