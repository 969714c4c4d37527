"""The JSON-lines event log: the input of `spine replay` and the ground of every summary.

Layout: one header line `{"spine_log": 1, "core_config": {...}}`, then for each step two lines, the event
(written BEFORE the step, so a crash inside the step still leaves its cause on disk) and its outcome:

    {"t": 48000, "event": {"type": "WakeDetected", ...}}
    {"t": 48000, "state": "Listening", "commands": [{"type": "StartTimer", ...}]}

`t` is the sample time at the device rate. Keys keep field order and floats come from the organs already
rounded, so the same run gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from device.core import codec
from device.core.commands import Command
from device.core.events import Event
from device.core.states import CoreConfig
from device.errors import UserError

LOG_VERSION = 1


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class EventLog:
    """Appends records to a file, flushing each line (a log that stops mid-run is still readable)."""

    def __init__(self, path: Path, core_config: CoreConfig) -> None:
        try:
            self._file: IO[str] = path.open("w", encoding="utf-8")
        except OSError as error:  # a directory, a missing parent, no permission: the run cannot keep its record
            raise UserError(
                f"cannot write the event log: {error.strerror}; give a file path in a writable directory",
                where=str(path),
            ) from None
        self._write({"spine_log": LOG_VERSION, "core_config": dataclasses.asdict(core_config)})

    def event(self, now: int, event: Event) -> None:
        self._write({"t": now, "event": codec.encode(event)})

    def outcome(self, now: int, state_name: str, commands: tuple[Command, ...]) -> None:
        self._write({"t": now, "state": state_name, "commands": codec.encode(commands)})

    def close(self) -> None:
        self._file.close()

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(_dumps(record) + "\n")
        self._file.flush()


@dataclass(frozen=True)
class LoggedStep:
    """One step as recorded: the event, the state it led to and the commands it produced."""

    line: int
    t: int
    event: Event
    state: str
    commands: tuple[Command, ...]


@dataclass(frozen=True)
class LoadedLog:
    core_config: CoreConfig
    steps: tuple[LoggedStep, ...]


def read_log(path: Path) -> LoadedLog:
    """Parse a log; a malformed line is a UserError naming the file and line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise UserError(f"cannot read event log: {error.strerror}", where=str(path)) from None
    if not lines:
        raise UserError("empty event log", where=str(path))
    header = _parse(path, 1, lines[0])
    if header.get("spine_log") != LOG_VERSION:
        raise UserError(f"not a spine event log (version {LOG_VERSION} header missing)", where=f"{path}:1")
    config = _core_config_of(path, header.get("core_config"))
    return LoadedLog(config, tuple(_steps(path, lines)))


def _steps(path: Path, lines: list[str]) -> Iterator[LoggedStep]:
    pending: tuple[int, int, Event] | None = None
    for number, text in enumerate(lines[1:], start=2):
        record = _parse(path, number, text)
        try:
            if "event" in record:
                if pending is not None:  # the step before this one crashed: no outcome was written
                    yield LoggedStep(pending[0], pending[1], pending[2], "?", ())
                pending = (number, int(record["t"]), codec.decode_event(record["event"]))
            elif pending is not None and "commands" in record:
                commands = codec.decode_commands(record["commands"])
                yield LoggedStep(pending[0], pending[1], pending[2], str(record["state"]), commands)
                pending = None
            else:
                raise codec.DecodeError("an outcome without its event")
        except (codec.DecodeError, KeyError, ValueError) as error:
            raise UserError(f"bad record: {error}", where=f"{path}:{number}") from None
    if pending is not None:  # the last step crashed: its event is on disk, its outcome never was
        yield LoggedStep(pending[0], pending[1], pending[2], "?", ())


def _core_config_of(path: Path, value: object) -> CoreConfig:
    """The header's core settings. A log written by another version of Spine has other settings, and replay needs
    exactly the ones the core decided with: say which differ, and that the writing version can replay it."""
    if not isinstance(value, dict):
        raise UserError("bad core_config in header: not a table of settings", where=f"{path}:1")
    expected = {field.name for field in dataclasses.fields(CoreConfig)}
    missing, unknown = sorted(expected - set(value)), sorted(set(value) - expected)
    if missing or unknown:
        differ = "; ".join(
            part
            for part in (
                f"settings this version needs and the log lacks: {', '.join(missing)}" if missing else "",
                f"settings this version does not know: {', '.join(unknown)}" if unknown else "",
            )
            if part
        )
        raise UserError(
            f"this log was written by another version of Spine ({differ}); replay it with the version that wrote it",
            where=f"{path}:1",
        )
    try:
        return CoreConfig.from_json(value)
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise UserError(f"bad core_config in header: {error}", where=f"{path}:1") from None


def _parse(path: Path, number: int, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"not JSON: {error.msg}", where=f"{path}:{number}") from None
    if not isinstance(value, dict):
        raise UserError("a record must be a JSON object", where=f"{path}:{number}")
    return value
