"""The event log when the disk refuses it (device/runtime/eventlog.py): a full disk is no reason for the assistant
to stop, and once the disk takes the log again the file is whole, byte for byte what an untroubled run writes.

The refusing disk is a stand-in file object that raises the kernel's ENOSPC for a while and then writes only part
of what it is given (as a nearly full disk does); `/dev/full` is the kernel's own always-full file.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from device.core import commands as cmd
from device.core import events as ev
from device.runtime import eventlog
from device.runtime.eventlog import EventLog, read_log
from tests.core_script import DEFAULTS


class RefusingDisk:
    """Writes into `target` like an unbuffered file, except that the first `refusals` writes raise ENOSPC and
    the next `partial` writes take only 7 bytes each."""

    def __init__(self, target: Path, refusals: int, partial: int) -> None:
        self._file = target.open("wb", buffering=0)
        self.refusals, self.partial = refusals, partial
        self.attempts = 0

    def write(self, data: bytes | bytearray) -> int:
        self.attempts += 1
        if self.refusals > 0:
            self.refusals -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        if self.partial > 0:
            self.partial -= 1
            return self._file.write(bytes(data[:7])) or 0
        return self._file.write(bytes(data)) or 0

    def close(self) -> None:
        self._file.close()


def write_steps(log: EventLog, count: int, first: int = 0) -> None:
    for index in range(first, first + count):
        t = 1000 * (index + 1)
        log.event(t, ev.SpeechStarted(t - 100))
        log.outcome(t, "Idle", (cmd.NoteIgnored("speech without the wake word"),))


def test_a_disk_that_refuses_then_takes_the_log_again_ends_with_the_whole_log(tmp_path: Path) -> None:
    untroubled = tmp_path / "untroubled.jsonl"
    log = EventLog(untroubled, DEFAULTS, say=lambda _m: None)
    write_steps(log, 20)
    log.close()

    said: list[str] = []
    troubled = tmp_path / "troubled.jsonl"
    log = EventLog(troubled, DEFAULTS, say=said.append)
    disk = RefusingDisk(tmp_path / "refusing.jsonl", refusals=12, partial=5)
    log._file.close()
    log._file = disk  # type: ignore[assignment]  # the header is already on the real file: start the stand-in with it
    disk._file.write(troubled.read_bytes())
    write_steps(log, 3)
    assert log.refused == "No space left on device" and log.unwritten_bytes > 0
    assert len(said) == 1 and "cannot write the event log" in said[0] and "free space" in said[0]
    write_steps(log, 17, first=3)
    assert log.refused is None and log.unwritten_bytes == 0
    log.close()
    assert said[1:] == [f"the event log {troubled} is written again, nothing lost"]
    assert (tmp_path / "refusing.jsonl").read_bytes() == untroubled.read_bytes()
    assert len(read_log(tmp_path / "refusing.jsonl").steps) == 20


def test_beyond_the_bound_the_newest_records_are_dropped_counted_and_said_at_the_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eventlog, "UNWRITTEN_MAX_BYTES", 2000)
    said: list[str] = []
    log = EventLog(Path("/dev/full"), DEFAULTS, say=said.append)
    write_steps(log, 10)
    assert 0 < log.unwritten_bytes <= 2000 and log.dropped_lines > 0
    log.close()
    assert len(said) == 2 and "records could not be written (No space left on device)" in said[1]


def test_the_kernels_full_disk_is_said_once_and_every_record_is_still_taken(tmp_path: Path) -> None:
    said: list[str] = []
    log = EventLog(Path("/dev/full"), DEFAULTS, say=said.append)
    write_steps(log, 50)  # no exception: the assistant's loop goes on
    assert log.refused == "No space left on device" and log.dropped_lines == 0
    assert len(said) == 1 and "/dev/full" in said[0]
