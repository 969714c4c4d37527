"""Settings of the event log (`[log]`): how large one file of a run's log grows and how much disk Spine's logs
may take together.

Part of the settings' one home (device/config.py); a leaf like it. The log itself is device/runtime/eventlog.py,
its parts and their pruning device/runtime/logparts.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from device.tomlfile import within


@dataclass(frozen=True)
class LogConfig:
    """The event log of `spine run`: every event and decision, the input of `spine replay`.

    A listening assistant logs about 10 MB per hour of constant conversation (measured on the real-stream soak)
    and little while idle; these bounds keep a device that runs for months from filling its disk.
    """

    part_mb: float = field(default=64.0, metadata=within(1.0, 4096.0))
    """A run's log starts a new part past this size, in MB: FILE.jsonl, then FILE.2.jsonl, FILE.3.jsonl, ...
    `spine replay FILE.jsonl` reads the parts in order."""
    keep_mb: float = field(default=1024.0, metadata=within(16.0, 1048576.0))
    """The most disk Spine's event logs in the log's directory may take together, in MB. Past it the oldest
    files are removed first (earlier runs, then the running one's first parts), never the part being written; a
    run whose first part was removed can no longer be replayed. Only files that begin as a Spine log are counted
    or removed."""
