"""The JSON-lines event log: the input of `spine replay` and the ground of every summary.

Layout: one header line `{"spine_log": 2, "core_config": {...}}`, then for each step two lines, the event
(written BEFORE the step, so a crash inside the step still leaves its cause on disk) and its outcome, which
ends with a running checksum over everything before it (device/runtime/logchain.py):

    {"t": 48000, "event": {"type": "WakeDetected", ...}}
    {"t": 48000, "state": "Listening", "commands": [{"type": "StartTimer", ...}], "chain": "3f9c0a5e1b7d2c48"}

`t` is the sample time at the device rate; it never goes backwards, and an outcome has its event's `t`. Keys
keep field order and floats come from the organs already rounded, so the same run gives the same bytes.
Version 1 logs (before the checksum) are still read; `LoadedLog.chained` is False for them. A long run's log
goes on in parts (FILE.2.jsonl, ...; device/runtime/logparts.py), each beginning with a part header
`{"spine_log": 2, "part": 2, "first": "FILE.jsonl", "chain": "..."}`; reading the first part reads them all.

Reading is bounded, because a log may come from anywhere: a line longer than `MAX_LINE_BYTES`, text that is
not UTF-8 or not JSON, numbers JSON cannot hold exactly (NaN, Infinity, 1e400), values nested deeper than the
vocabulary ever is, or a `t` that is not a sample count, each give one `UserError` naming FILE:LINE.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from device.core import codec
from device.core.commands import Command
from device.core.events import Event
from device.core.states import CoreConfig
from device.errors import UserError
from device.runtime.logchain import chain_start, link, split_chain, with_chain
from device.runtime.logparts import part_path, parts_of, prune, remove_later_parts

LOG_VERSION = 2
"""2: every outcome record carries the chain; 1: written before chained checks (read, not checked)."""
READABLE_VERSIONS = (1, 2)
MAX_LINE_BYTES = 1 << 20
"""The longest line a reader accepts, in bytes (1 MiB). The longest real records, a reply prompt with its
history, are a few kilobytes; this bound keeps a corrupt or hostile file from being read whole into memory."""


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


UNWRITTEN_MAX_BYTES = 64 << 20
"""How much of the log is held in memory while the disk refuses it (full, or an I/O error), in bytes: 64 MiB,
hours of a busy run (a step is two lines of 100-300 bytes; a long reply prompt a few kilobytes)."""


def _say_on_stderr(message: str) -> None:
    print(f"spine: {message}", file=sys.stderr, flush=True)


class EventLog:
    """Appends records to a file, each line handed to the kernel at once (a log that stops mid-run is still
    readable).

    A write the disk refuses (full: ENOSPC; EIO, EDQUOT) does not stop the assistant: the log is its record, not
    its work. What could not be written is held in memory (`UNWRITTEN_MAX_BYTES` at most) and written, in order,
    by the next record once the disk takes it again, so the file ends up whole. `say` (stderr unless the run
    sets the service log's) hears once that writing stopped and once that it caught up. Beyond the bound, the
    newest records are dropped and counted (`dropped_lines`); a reader then finds the gap as a broken chain."""

    def __init__(
        self,
        path: Path,
        core_config: CoreConfig,
        say: Callable[[str], None] = _say_on_stderr,
        part_bytes: int | None = None,
        keep_bytes: int | None = None,
    ) -> None:
        """`part_bytes`: start the next part (device/runtime/logparts.py) past this size; `keep_bytes`: keep
        Spine's logs in this directory under it. None: one file, nothing removed (the demo, benches and tests)."""
        try:
            self._file: BinaryIO = path.open("wb", buffering=0)
        except OSError as error:  # a directory, a missing parent, no permission: the run cannot keep its record
            raise UserError(
                f"cannot write the event log: {error.strerror}; give a file path in a writable directory",
                where=str(path),
            ) from None
        self.path = path
        """The part being written."""
        self.first_path = path
        self.say = say
        self._part_bytes, self._keep_bytes = part_bytes, keep_bytes
        self._part = 1
        self._part_size = 0
        self._part_refused = False
        self._unwritten = bytearray()
        self.refused: str | None = None
        """Why the disk refuses the log now (the error's text), None while it takes every line."""
        self.dropped_lines = 0
        header = _dumps({"spine_log": LOG_VERSION, "core_config": dataclasses.asdict(core_config)})
        self._chain = chain_start(header)
        self._events_since_outcome: list[str] = []
        self._write(header)
        remove_later_parts(path)
        self._prune()

    @property
    def unwritten_bytes(self) -> int:
        """Bytes of the log held in memory because the disk refused them."""
        return len(self._unwritten)

    def event(self, now: int, event: Event) -> None:
        line = _dumps({"t": now, "event": codec.encode(event)})
        self._events_since_outcome.append(line)
        self._write(line)

    def outcome(self, now: int, state_name: str, commands: tuple[Command, ...]) -> None:
        body = _dumps({"t": now, "state": state_name, "commands": codec.encode(commands)})
        self._chain = link(self._chain, self._events_since_outcome, body)
        self._events_since_outcome = []
        self._write(with_chain(body, self._chain))
        if self._part_bytes is not None and self._part_size >= self._part_bytes and not self._unwritten:
            self._next_part()  # between steps only, and never while the disk holds back part of this one

    def _next_part(self) -> None:
        number = self._part + 1
        path = part_path(self.first_path, number)
        try:
            file: BinaryIO = path.open("wb", buffering=0)
        except OSError as error:
            if not self._part_refused:  # said once; the current part goes on growing
                self._part_refused = True
                self.say(f"cannot start the event log's next part {path} ({error.strerror}): {self.path} goes on")
            return
        self._file.close()
        self._file, self.path, self._part, self._part_size = file, path, number, 0
        self._write(_dumps({"spine_log": LOG_VERSION, "part": number, "first": self.first_path.name,
                            "chain": self._chain}))  # fmt: skip
        self._prune()

    def _prune(self) -> None:
        if self._keep_bytes is None:
            return
        removed = prune(self.path.parent, self._keep_bytes, self.path)
        if removed:
            self.say(
                f"removed {len(removed)} old event log file(s), {sum(size for _, size in removed) / 1e6:.1f} MB "
                f"(oldest {removed[0][0].name}), to keep the logs in {self.path.parent} under [log] keep_mb "
                f"({self._keep_bytes / 1e6:g} MB)"
            )

    def close(self) -> None:
        """Writes what the disk refused before, if it takes it now; says what is lost if not."""
        self._drain()
        if self._unwritten or self.dropped_lines:
            self.say(
                f"event log {self.path}: {len(self._unwritten)} bytes and {self.dropped_lines} records could not be "
                f"written ({self.refused or 'the disk refused them'}); the log ends early"
            )
        self._file.close()

    def _write(self, line: str) -> None:
        data = (line + "\n").encode("utf-8")
        self._part_size += len(data)
        if self._unwritten and len(self._unwritten) + len(data) > UNWRITTEN_MAX_BYTES:
            self.dropped_lines += 1
            return
        self._unwritten += data
        self._drain()

    def _drain(self) -> None:
        """Hands the kernel everything held, in order; a partial write keeps the rest for the next record."""
        try:
            while self._unwritten:
                written = self._file.write(self._unwritten)
                if not written:  # nothing taken (a regular file never does that): retried by the next record,
                    return  # never spun on here
                del self._unwritten[:written]
        except OSError as error:
            if self.refused is None:
                self.refused = error.strerror or str(error)
                self.say(
                    f"cannot write the event log {self.path} ({self.refused}): the assistant goes on and holds the "
                    f"log in memory (up to {UNWRITTEN_MAX_BYTES >> 20} MiB) until the disk takes it again; free "
                    "space there or give --log on another disk"
                )
            return
        if self.refused is not None:
            self.refused = None
            lost = f", {self.dropped_lines} records dropped" if self.dropped_lines else ", nothing lost"
            self.say(f"the event log {self.path} is written again{lost}")


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
    """A log as read. `chained`: it carries checksums (version 2), and `broken_links` lists the line of each step
    whose checksum does not match (the step's event line): edited, or a step before it removed, duplicated or moved.
    """

    core_config: CoreConfig
    steps: tuple[LoggedStep, ...]
    chained: bool = True
    broken_links: tuple[int, ...] = ()


def read_log(path: Path) -> LoadedLog:
    """Parse a log; a malformed line is a UserError naming the file and line."""
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        raise UserError("empty event log", where=str(path))
    header = _parse(path, 1, first[1])
    version = header.get("spine_log")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise UserError(f"not a spine event log (version {LOG_VERSION} header missing)", where=f"{path}:1")
    if "part" in header:
        raise UserError(_later_part_problem(path, header), where=f"{path}:1")
    config = _core_config_of(path, header.get("core_config"))
    reader = _StepReader(path, chained=version >= 2, header_line=first[1])
    steps = list(reader.steps(lines))
    parts = parts_of(path)
    for number, part in enumerate(parts[1:], 2):  # a long run's next parts (device/runtime/logparts.py)
        part_lines = _lines(part)
        part_first = next(part_lines, None)
        part_header = _parse(part, 1, part_first[1]) if part_first is not None else {}
        if part_header.get("part") != number or part_header.get("first") != path.name:
            raise UserError(f"not part {number} of the event log {path.name}: a file in its place", where=f"{part}:1")
        if reader.chained and part_header.get("chain") != reader.chain:
            raise UserError(
                f"part {number} does not continue part {number - 1}: a part is missing, damaged or from another run",
                where=f"{part}:1",
            )
        reader.path = part
        steps += reader.steps(part_lines)
    missing = len(parts) + 1
    if part_path(path, missing + 1).is_file():
        raise UserError(f"part {missing} of this run's log is missing ({part_path(path, missing).name}) but later "
                        "parts exist: the run cannot be replayed whole", where=str(path))  # fmt: skip
    return LoadedLog(config, tuple(steps), chained=version >= 2, broken_links=tuple(reader.broken_links))


def _later_part_problem(path: Path, header: dict[str, Any]) -> str:
    first = header.get("first")
    if not isinstance(first, str) or not first or "/" in first:
        return "a later part of an event log that does not name its first part"
    if (path.parent / first).exists():
        part = header.get("part")
        return f"part {part} of a run's event log: replay its first part, {first} (the parts are read in order)"
    return (
        f"part {header.get('part')} of a run's event log whose first part, {first}, was removed (the logs are kept "
        "under [log] keep_mb): a run is replayed from its start, so this one cannot be"
    )


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text without its newline), reading at most MAX_LINE_BYTES + 1 bytes per line. Split on
    "\\n" only: a transcript may hold other line separators (U+2028), which JSON writes unescaped."""
    try:
        file = path.open("rb")
    except OSError as error:
        raise UserError(f"cannot read event log: {error.strerror}", where=str(path)) from None
    with file:
        number = 0
        while True:
            number += 1
            try:
                raw = file.readline(MAX_LINE_BYTES + 1)
            except OSError as error:  # a directory opens on some systems and fails here
                raise UserError(f"cannot read event log: {error.strerror}", where=str(path)) from None
            if not raw:
                return
            body = raw.removesuffix(b"\n")
            if len(body) > MAX_LINE_BYTES:
                raise UserError(
                    f"line longer than {MAX_LINE_BYTES} bytes (1 MiB): no spine record is that long; "
                    "this is not an event log, or it is damaged",
                    where=f"{path}:{number}",
                )
            try:
                yield number, body.decode("utf-8")
            except UnicodeDecodeError:
                raise UserError(
                    "not UTF-8 text: not a spine event log, or a damaged one", where=f"{path}:{number}"
                ) from None


class _StepReader:
    """Pairs each event with its outcome, checks the clock and the chain, and notes which links are broken."""

    def __init__(self, path: Path, chained: bool, header_line: str) -> None:
        self.path = path
        self.chained = chained
        self.chain = chain_start(header_line)
        self.events_since_outcome: list[str] = []
        self.broken_links: list[int] = []
        self.last_t = 0

    def steps(self, lines: Iterator[tuple[int, str]]) -> Iterator[LoggedStep]:
        pending: tuple[int, int, Event] | None = None
        for number, text in lines:
            record = _parse(self.path, number, text)
            where = f"{self.path}:{number}"
            try:
                t = self._time_of(record)
                if "event" in record:
                    if pending is not None:  # the step before this one crashed: no outcome was written
                        yield LoggedStep(pending[0], pending[1], pending[2], "?", ())
                    pending = (number, t, codec.decode_event(record["event"]))
                    self.events_since_outcome.append(text)
                elif pending is not None and "commands" in record:
                    if t != pending[1]:
                        raise codec.DecodeError(
                            f"outcome at t={t}, but its event (line {pending[0]}) is at t={pending[1]}"
                        )
                    self._check_link(pending[0], text, where)
                    commands = codec.decode_commands(record["commands"])
                    yield LoggedStep(pending[0], pending[1], pending[2], str(record["state"]), commands)
                    pending = None
                else:
                    raise codec.DecodeError("an outcome without its event")
            except (codec.DecodeError, KeyError, ValueError, RecursionError) as error:
                problem = "nested too deeply" if isinstance(error, RecursionError) else str(error)
                raise UserError(f"bad record: {problem}", where=where) from None
        if pending is not None:  # the last step crashed: its event is on disk, its outcome never was
            yield LoggedStep(pending[0], pending[1], pending[2], "?", ())

    def _time_of(self, record: dict[str, Any]) -> int:
        t = record.get("t")
        if type(t) is not int or t < 0:
            raise codec.DecodeError(f"`t` must be a sample count (an integer, at least 0), got {json.dumps(t)}")
        if t < self.last_t:  # a step copied in, or moved: the sample clock only runs forwards
            raise codec.DecodeError(f"`t` goes backwards: {t} after {self.last_t}; records are in time order")
        self.last_t = t
        return t

    def _check_link(self, step_line: int, text: str, where: str) -> None:
        if not self.chained:
            return
        split = split_chain(text)
        if split is None:
            raise codec.DecodeError('an outcome of a version 2 log must end with its "chain" field')
        body, recorded = split
        if link(self.chain, self.events_since_outcome, body) != recorded:
            self.broken_links.append(step_line)
        self.chain, self.events_since_outcome = recorded, []  # the next link is checked on its own


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
    except (KeyError, TypeError, AttributeError, ValueError, RecursionError) as error:
        raise UserError(f"bad core_config in header: {error}", where=f"{path}:1") from None


class _NotExact(ValueError):
    """A number JSON allows but a float cannot hold (1e400), or a constant JSON does not allow (NaN)."""


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _NotExact(f"number {text} is out of range")
    return value


def _no_constant(text: str) -> float:
    raise _NotExact(f"{text} is not a JSON number")


def _parse(path: Path, number: int, text: str) -> dict[str, Any]:
    where = f"{path}:{number}"
    try:
        value = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise UserError(f"not JSON: {error.msg}", where=where) from None
    except ValueError as error:  # 1e400, NaN, or an integer of thousands of digits
        raise UserError(f"bad number: {error}", where=where) from None
    except RecursionError:
        raise UserError("not a spine record: arrays or objects nested too deeply", where=where) from None
    if not isinstance(value, dict):
        raise UserError("a record must be a JSON object", where=where)
    return value
