"""Drives a simulated-room `Rig` in virtual time exactly like `run_virtual`, with one addition: a test can
inject an event at an exact boundary, chosen by a predicate over what has happened so far.

The predicate is asked at every point where the loop could take an event in: after each card tick (one
period played and captured, before that period's events are handled) and after each handled event (its
commands executed, before the next event or tick). At the first point where it holds, the event is handled
at that point's sample time, through `rig.loop.handle` like any other event. The loop then runs on until the
assistant is quiet (idle, nothing playing, no job or timer pending) and stops the rig.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from device.core import commands as cmd
from device.core.events import Event
from device.core.states import Idle, State
from device.runtime.jobs import VirtualRunner
from device.sim.demo import Rig

Point = Literal["tick", "event"]


@dataclass(frozen=True)
class Handled:
    """One step as the driver saw it: the event, the state it led to, the commands it executed."""

    t: int
    event: Event
    state: State
    commands: tuple[cmd.Command, ...]


@dataclass
class Injection:
    """Where the injected event went in, and the step it made."""

    t: int
    point: Point
    step: Handled
    played_before: int
    """The gate's played-sample cursor of the open epoch at the injection (0 if none is open)."""


@dataclass
class Driver:
    rig: Rig
    max_samples: int
    """The run ends here at the latest (a stuck assistant fails the test instead of hanging it)."""
    now: int = 0
    point: Point = "tick"
    handled: list[Handled] = field(default_factory=list)
    injection: Injection | None = None
    stopped_at: int | None = None
    _executed: list[cmd.Command] = field(default_factory=list)

    def __post_init__(self) -> None:
        execute = self.rig.executor.execute

        def recording(commands: tuple[cmd.Command, ...], now: int) -> None:
            self._executed.extend(commands)
            execute(commands, now)

        # The executor is the loop's only way out, so wrapping it sees every command exactly as executed.
        self.rig.executor.execute = recording  # type: ignore[method-assign]

    # ---------------------------------------------------------------------------------- what predicates see
    @property
    def state(self) -> State:
        return self.rig.loop.state

    @property
    def played(self) -> int:
        """Samples of the open epoch handed to the speaker so far (the gate's own cursor)."""
        return self.rig.gate.callback.played_samples

    def count(self, kind: type[Event]) -> int:
        return sum(isinstance(h.event, kind) for h in self.handled)

    def last_event_is(self, kind: type[Event]) -> bool:
        return self.point == "event" and isinstance(self.handled[-1].event, kind)

    def commands(self, kind: type[cmd.Command]) -> list[cmd.Command]:
        return [c for h in self.handled for c in h.commands if isinstance(c, kind)]

    # ---------------------------------------------------------------------------------- the loop
    def run(self, when: Callable[[Driver], bool], make: Callable[[int], Event]) -> None:
        """Run the scene; inject `make(now)` at the first point where `when(self)` holds; run on until quiet."""
        rig = self.rig
        runner = rig.runner
        assert isinstance(runner, VirtualRunner)
        while self.now < self.max_samples:
            start = self.now
            mic, played = rig.card.tick(start, rig.period)
            self.now = start + rig.period
            self.point = "tick"
            self._maybe_inject(when, make)
            pending = rig.inbox.drain() + rig.hear(mic, start, played)
            while True:
                pending += runner.pop_due(self.now) + list(rig.timers.pop_due(self.now))
                if not pending:
                    break
                for event in pending:
                    self._handle(event)
                    self.point = "event"
                    self._maybe_inject(when, make)
                pending = rig.inbox.drain()
            if self.injection is not None and self._quiet(runner):
                break
        self.stopped_at = self.now
        rig.stop(self.now, "end")

    def _maybe_inject(self, when: Callable[[Driver], bool], make: Callable[[int], Event]) -> None:
        if self.injection is not None or not when(self):
            return
        point, played_before = self.point, self.played if self.rig.gate.busy() else 0
        self._handle(make(self.now))
        self.injection = Injection(self.now, point, self.handled[-1], played_before)

    def _handle(self, event: Event) -> None:
        self._executed.clear()
        self.rig.loop.handle(event, self.now)
        self.handled.append(Handled(self.now, event, self.rig.loop.state, tuple(self._executed)))

    def _quiet(self, runner: VirtualRunner) -> bool:
        rig = self.rig
        return (
            isinstance(rig.loop.state, Idle)
            and not rig.gate.busy()
            and runner.idle()
            and rig.timers.armed() == 0
            and rig.card.player.done(self.now)
        )
