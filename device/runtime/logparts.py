"""A run's event log in parts, and the bound on the disk Spine's logs take together (`[log]`).

A run that lasts months cannot keep one file: past `[log] part_mb` the log goes on in the next part, named after
the first (`events-X.jsonl`, `events-X.2.jsonl`, `events-X.3.jsonl`, ...). A part after the first begins with a
header that names its number, the first part and the checksum chain so far, so the reader (device/runtime/
eventlog.py) follows the parts in order and notices one missing or swapped. Parts are cut between steps only:
an event and its outcome always share a file.

Past `[log] keep_mb` the oldest files that begin as a Spine log are removed, oldest first, never the part being
written; nothing else in the directory is touched.
"""

from __future__ import annotations

from pathlib import Path

HEADER_PREFIX = b'{"spine_log":'
"""How every Spine log, and every part of one, begins: the test for "this file is ours to count and remove"."""


def part_path(first: Path, number: int) -> Path:
    """Part `number` of the log whose first part is `first` (1 is `first` itself): run.jsonl -> run.2.jsonl."""
    return first if number == 1 else first.with_name(f"{first.stem}.{number}{first.suffix}")


def parts_of(first: Path) -> list[Path]:
    """The parts of the log whose first part is `first`, in order, as far as they follow on without a gap."""
    parts: list[Path] = []
    while (part := part_path(first, len(parts) + 1)).is_file():
        parts.append(part)
    return parts


def steps_of_later_part(part: bytes) -> bytes:
    """A later part without its header line. The chain runs on across parts, so the first part followed by the
    later parts cut so is one log that reads and replays as the parts do (the monitor's download is one file)."""
    newline = part.find(b"\n")
    return b"" if newline < 0 else part[newline + 1 :]


def is_spine_log(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(len(HEADER_PREFIX)) == HEADER_PREFIX
    except OSError:
        return False


def remove_later_parts(first: Path) -> None:
    """Removes the later parts of an earlier log that had the name `first` (opening `first` anew has just
    overwritten that log's first part): left behind, they would be read as this run's."""
    number = 2
    while (part := part_path(first, number)).is_file() and is_spine_log(part):
        try:
            part.unlink()
        except OSError:
            return
        number += 1


def prune(directory: Path, keep_bytes: int, writing: Path) -> list[tuple[Path, int]]:
    """Removes the oldest Spine logs in `directory` (by modification time) until all of them, `writing`
    included, take at most `keep_bytes`; returns what was removed with its size. `writing` is never removed."""
    try:
        entries = [p for p in directory.iterdir() if p.is_file() and is_spine_log(p)]
    except OSError:
        return []
    sized: list[tuple[float, str, Path, int]] = []
    for path in entries:
        try:
            stat = path.stat()
        except OSError:
            continue
        sized.append((stat.st_mtime, path.name, path, stat.st_size))
    total = sum(size for *_, size in sized)
    removed: list[tuple[Path, int]] = []
    for _mtime, _name, path, size in sorted(sized):
        if total <= keep_bytes:
            break
        if path == writing:
            continue
        try:
            path.unlink()
        except OSError:
            continue
        total -= size
        removed.append((path, size))
    return removed
