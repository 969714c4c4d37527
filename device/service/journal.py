"""Where `spine run`'s service lines go: the journal when systemd connected stderr to it, stderr otherwise.

systemd sets `JOURNAL_STREAM=DEVICE:INODE` to the stream it connected stdout/stderr to; the variable is inherited,
so it counts only while fd 2 is still that stream (sd_journal_stream_fd(3) says to check this). Then lines go
through systemd.journal.send with fields: `STATE=` and `TURN=` on a transition (`journalctl -u spine STATE=Muted`
finds them). Otherwise only warnings go to stderr: a transition, or a real-time priority granted, is news for the
journal, not for a terminal (`spine run` prints on stderr what it printed before, unless something is wrong).

One line per transition at most, never one per audio period.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import Literal

Level = Literal["info", "warning"]
PRIORITY = {"info": 6, "warning": 4}  # syslog levels: LOG_INFO, LOG_WARNING
JournalSend = Callable[..., object]


def journal_stream_is_stderr(value: str | None, stderr_device: int, stderr_inode: int) -> bool:
    """True when `JOURNAL_STREAM` (DEVICE:INODE, decimal) names the stream fd 2 is."""
    if not value:
        return False
    device, colon, inode = value.partition(":")
    if not (colon and device.isdigit() and inode.isdigit()):
        return False
    return (int(device), int(inode)) == (stderr_device, stderr_inode)


class ServiceLog:
    """Writes the service's lines (`info` and `warning`) to the journal, or warnings to stderr."""

    def __init__(self, environ: Mapping[str, str], journal_send: JournalSend | None = None, stderr_fd: int = 2) -> None:
        """`journal_send` replaces systemd.journal.send (tests)."""
        self._stderr_fd = stderr_fd
        self._send = journal_send
        if self._send is None and _stderr_is_journal(environ, stderr_fd):
            self._send = _systemd_journal_send()
        self.to_journal = self._send is not None

    def info(self, message: str, **fields: str) -> None:
        self.line("info", message, **fields)

    def warning(self, message: str, **fields: str) -> None:
        self.line("warning", message, **fields)

    def line(self, level: Level, message: str, **fields: str) -> None:
        if self._send is not None:
            self._send(message, PRIORITY=str(PRIORITY[level]), SYSLOG_IDENTIFIER="spine", **fields)
        elif level == "warning":
            # One write per line: lines from two threads never interleave.
            os.write(self._stderr_fd, f"spine: {message}\n".encode())


def _stderr_is_journal(environ: Mapping[str, str], stderr_fd: int) -> bool:
    try:
        stat = os.fstat(stderr_fd)
    except OSError:
        return False
    return journal_stream_is_stderr(environ.get("JOURNAL_STREAM"), stat.st_dev, stat.st_ino)


def _systemd_journal_send() -> JournalSend | None:
    try:
        import systemd.journal as journal
    except ImportError:
        sys.stderr.write("spine: JOURNAL_STREAM is set but systemd-python is missing: logging to stderr\n")
        return None
    send: JournalSend = journal.send
    return send
