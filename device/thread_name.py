"""Names the calling thread for the kernel: /proc/PID/task/TID/comm, what `top -H`, `ps -L` and `spine bench`'s
per-thread CPU show. Python's own thread names stay inside Python; without this every thread of `spine run` reads
"python" and nobody can tell the audio callback's CPU from a worker's.

The main thread (the FSM thread in `spine run`) is left as it is: its name is the process's name, which `ps`,
`pgrep` and service managers match on.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

_KERNEL_NAME_BYTES = 15
"""The kernel keeps 16 bytes, the last a NUL."""


def _setter() -> Callable[[str], None] | None:
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols: glibc's pthread functions
        setname, this = libc.pthread_setname_np, libc.pthread_self
    except (OSError, AttributeError):  # not glibc (or not Linux): the names are a nicety
        return None
    setname.argtypes = [ctypes.c_ulong, ctypes.c_char_p]
    this.restype = ctypes.c_ulong
    return lambda name: setname(this(), name.encode("utf-8", "replace")[:_KERNEL_NAME_BYTES])


_SET_NAME = _setter()


def name_this_thread(name: str) -> None:
    """Give the calling thread `name` (cut to 15 bytes) as the kernel shows it; nothing where that is not possible."""
    if _SET_NAME is not None:
        _SET_NAME(name)
