"""`spine replay LOG`: re-run the pure core over a recorded event log and compare every decision."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from device.core.machine import IllegalEvent, step
from device.core.states import initial
from device.runtime.eventlog import LoggedStep, read_log


@dataclass(frozen=True)
class Mismatch:
    line: int
    recorded: str
    recomputed: str


def replay(path: Path) -> tuple[tuple[LoggedStep, ...], list[Mismatch]]:
    """Every step's recomputed (state, commands) against the recorded ones (invariant 7)."""
    log = read_log(path)
    spine = initial(log.core_config)
    mismatches: list[Mismatch] = []
    for logged in log.steps:
        try:
            spine, commands = step(spine, logged.event, logged.t)
        except IllegalEvent as error:
            mismatches.append(Mismatch(logged.line, logged.state, f"illegal: {error}"))
            continue
        state = type(spine.state).__name__
        if (state, commands) != (logged.state, logged.commands):
            mismatches.append(Mismatch(logged.line, f"{logged.state} {logged.commands}", f"{state} {commands}"))
    return log.steps, mismatches
