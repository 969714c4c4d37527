"""The signals `spine run` answers, and the bound on how long a stop may take.

`RunSignals.install()` is the first thing `spine run` does, before any heavy import or model load: from then on
SIGINT and SIGTERM request a stop, and SIGUSR1 / SIGUSR2 request mute / unmute (`systemctl kill -s USR1 spine`).
Before it, Python's defaults apply: a SIGINT raised KeyboardInterrupt in whatever code ran - inside a C
extension's import it became "ImportError: initialization failed" with a traceback, and inside an import that
swallows it the signal was lost and the daemon ran on (issue 11) - and a SIGTERM killed the process without a log.

A handler does the least a handler can: it assigns one attribute or appends to a deque. No lock (a handler runs
on the main thread between two bytecodes, possibly while that thread holds the very lock it would take:
`threading.Event.set` from a handler can deadlock), no exception, no I/O. Whoever waits polls `stop_requested()`
at a bounded interval: the loop once a round, model loading between models.

`StopGuard` bounds the rest: once a stop has begun (the loop has ended, or loading was abandoned), the process
exits within `STOP_BOUND_S` even if a native call never returns (a sound server that does not answer a stream's
close, a worker stuck in native code): the event log already ends with the stop by then.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import deque
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}
STOP_BOUND_S = 3.0
"""Once a stop has begun, the process exits within this; the jobs' share is `device.runtime.jobs.STOP_JOIN_S`."""
EXIT_STUCK = 1
"""Exit status when the stop did not finish within `STOP_BOUND_S` and the guard ended the process."""


class StopBeforeStart(Exception):
    """A stop was requested while `spine run` was still starting (loading the models)."""


class RunSignals:
    """What the signals asked for: a stop (and which signal), and mute requests in arrival order.

    Tests and other threads call `request_stop` directly; the handlers set the same fields."""

    def __init__(self) -> None:
        self.stop_reason: str | None = None
        self.mute_requests: deque[tuple[bool, str]] = deque()
        """(muted, which signal), appended by the handlers, popped by the loop."""

    def install(self) -> RunSignals:
        """Handle SIGINT, SIGTERM, SIGUSR1 and SIGUSR2 from now on (main thread only: Python's rule)."""
        for number in STOP_SIGNALS:
            signal.signal(number, self._on_stop)
        signal.signal(signal.SIGUSR1, self._on_mute)
        signal.signal(signal.SIGUSR2, self._on_mute)
        return self

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:  # the first request names the stop
            self.stop_reason = reason

    def stop_requested(self) -> bool:
        return self.stop_reason is not None

    def raise_if_stopped(self) -> None:
        """Called between two slow start-up steps: a stop requested meanwhile ends the start-up there."""
        if self.stop_reason is not None:
            raise StopBeforeStart(self.stop_reason)

    def _on_stop(self, number: int, _frame: FrameType | None) -> None:
        self.request_stop(STOP_SIGNALS.get(signal.Signals(number), f"signal {number}"))

    def _on_mute(self, number: int, _frame: FrameType | None) -> None:
        self.mute_requests.append((number == signal.SIGUSR1, signal.Signals(number).name))


class StopGuard:
    """Ends the process if a stop that has begun is not done within `bound_s` (see the module's docstring).

    `arm(what)` is called by the main thread when the stop begins, `done()` when it is over; `arm` starts a daemon
    thread that waits for `done` and otherwise says what was stuck on stderr (one line) and exits at once."""

    def __init__(self, bound_s: float = STOP_BOUND_S, exit_now: Callable[[int], object] = os._exit) -> None:
        self._bound_s = bound_s
        self._exit_now = exit_now
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.stuck_in = "the stop"
        """The stop's current phase, set by the main thread; named in the message if it never ends."""

    def arm(self, what: str) -> None:
        self.stuck_in = what
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="spine-stop-guard", daemon=True)
            self._thread.start()

    def done(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        if self._done.wait(self._bound_s):
            return
        message = f"spine: stopping took more than {self._bound_s:g} s (stuck in {self.stuck_in}); exiting now\n"
        os.write(2, message.encode())  # not `print`: the stuck thread may hold sys.stderr's lock
        self._exit_now(EXIT_STUCK)
