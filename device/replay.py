"""`spine replay LOG`: re-run the pure core over a recorded event log and compare every decision, and check the
log's running checksum, which finds an edited event even when it leads to the same decisions
(device/runtime/logchain.py). A log written before the checksum (version 1) has its decisions checked only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from device.core.machine import IllegalEvent, step
from device.core.states import initial
from device.errors import UserError
from device.runtime.eventlog import LoggedStep, read_log

EDITED = (
    "edited after it was written: its checksum does not match (this step's event or outcome was changed, "
    "or a step before it was removed, duplicated or moved)"
)
NOT_CHAINED = (
    "not checked: written before chained checks (spine_log 1), so an edited event that leads to the same "
    "decisions, or a step copied in at the same time, goes unnoticed"
)


@dataclass(frozen=True)
class Mismatch:
    line: int
    recorded: str
    recomputed: str


@dataclass(frozen=True)
class Replay:
    """What a replay found: `mismatches`, decisions that differ; `edited`, lines of steps whose checksum breaks;
    `chained`, whether the log had checksums to check at all."""

    steps: tuple[LoggedStep, ...]
    mismatches: list[Mismatch]
    edited: tuple[int, ...]
    chained: bool

    @property
    def reproduced(self) -> bool:
        return not self.mismatches and not self.edited


def replay(path: Path) -> tuple[tuple[LoggedStep, ...], list[Mismatch]]:
    """Every step's recomputed (state, commands) against the recorded ones (invariant 7); a broken checksum is a
    mismatch too, recorded as the checksum and recomputed as what it means."""
    checked = replay_checked(path)
    broken = [Mismatch(line, "checksum", EDITED) for line in checked.edited]
    return checked.steps, sorted([*checked.mismatches, *broken], key=lambda mismatch: mismatch.line)


def replay_checked(path: Path) -> Replay:
    log = read_log(path)
    spine = initial(log.core_config)
    mismatches: list[Mismatch] = []
    for logged in log.steps:
        try:
            spine, commands = step(spine, logged.event, logged.t)
        except IllegalEvent as error:
            mismatches.append(Mismatch(logged.line, logged.state, f"illegal: {error}"))
            continue
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as error:
            # The decoder checks names, not value types: a field of the wrong type fails inside the core.
            raise UserError(
                f"this event cannot be stepped ({type(error).__name__}: {error}); a field has the wrong type?",
                where=f"{path}:{logged.line}",
            ) from None
        state = type(spine.state).__name__
        if (state, commands) != (logged.state, logged.commands):
            mismatches.append(Mismatch(logged.line, f"{logged.state} {logged.commands}", f"{state} {commands}"))
    return Replay(log.steps, mismatches, log.broken_links, log.chained)
