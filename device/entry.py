"""The `spine` command's entry point: a stop signal has a defined outcome from the process's first instant.

Importing the command line takes a while (argparse is quick, but the command groups pull in NumPy and more:
0.2 s on a quiet x86 machine, over a second on a loaded Pi). Under Python's defaults a SIGINT in that window
raised KeyboardInterrupt inside some import and printed a traceback (or, inside a C extension's import, became
"ImportError: initialization failed"), and a SIGTERM killed the process silently. So the very first thing is a
handler that ends the process with one line and exit 0: nothing has started, so nothing is lost. The command
line then hands the signals to the command (`spine run` installs its own stop handling as its first act; every
other command gets Python's defaults back, where Ctrl-C ends it with exit 130).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

EARLY_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stopped_before_start(number: int, _frame: FrameType | None) -> None:
    # A handler may run in the middle of any import: write with one system call and leave at once, running no
    # more Python (no finalisers of half-imported modules).
    os.write(2, f"spine: stopped by {signal.Signals(number).name} before it started\n".encode())
    os._exit(0)


def main() -> int:
    for number in EARLY_STOP_SIGNALS:
        signal.signal(number, _stopped_before_start)
    from device.cli import main as cli_main

    return cli_main()


def restore_default_signals() -> None:
    """Python's own handling of SIGINT (KeyboardInterrupt) and SIGTERM (end the process), for the commands that
    do not handle them themselves. Only the main thread may set handlers (a test may run a command elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
