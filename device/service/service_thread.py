"""The service thread: beside the FSM thread, it tells systemd what the spine does and whether it is alive.

The FSM thread only queues (an observer on the loop puts each change of state on a queue; `ready` and `say`
queue too): it never waits on systemd, the journal or stderr. This thread sends READY=1 and STATUS=, writes the
transition lines, and every half watchdog interval takes a `Beat` and pings WATCHDOG=1 when the rule allows
(device/service/watchdog.py). The state the rule sees is the one it last sent as STATUS=, so a Degraded state
that excuses a silent card is always announced before a ping that relies on it.

STOPPING=1 is sent at once by whoever begins the stop (`stopping`), not queued behind anything.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from device.core.commands import Command
from device.core.events import Event
from device.core.states import Degraded, State
from device.service.journal import Level, ServiceLog
from device.service.notify import Notifier, notify_message, ready_message, state_turn, status_text
from device.service.watchdog import Beat, Watchdog
from device.thread_name import name_this_thread

Beats = Callable[[float, str], Beat]
"""(at_s, the state's name) -> the counters now: read from the FSM thread's and the callback's attributes."""


@dataclass(frozen=True)
class _Changed:
    state: State
    event: str


@dataclass(frozen=True)
class _Ready:
    state: State


@dataclass(frozen=True)
class _Line:
    level: Level
    message: str


_STOP = object()


class ServiceThread:
    def __init__(
        self,
        notifier: Notifier,
        log: ServiceLog,
        watchdog_interval_s: float | None,
        beats: Beats,
        state_now: Callable[[], State],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`state_now` is the loop's current state, read by the observer on the FSM thread."""
        self._notifier, self._log, self._interval_s = notifier, log, watchdog_interval_s
        self._beats, self._state_now, self._clock = beats, state_now, clock
        self._queue: queue.Queue[object] = queue.Queue()  # not SimpleQueue: a signal can hang its timed get (Inbox)
        state = state_now()
        self._last_key = _key(state)  # the FSM thread's: which change it queued last
        self._state = type(state).__name__  # this thread's: the state it last announced
        self._watchdog: Watchdog | None = None
        self._next_check_s = 0.0
        self.pings = 0
        self._thread = threading.Thread(target=self._run, name="spine-service", daemon=True)

    def start(self) -> ServiceThread:
        self._thread.start()
        return self

    # ------------------------------------------------------------------------------ from the FSM thread
    def observe(self, _now: int, event: Event, _state_name: str, _commands: tuple[Command, ...]) -> None:
        """A loop observer: queues the state when it changed (name, turn, or Degraded's attempt)."""
        state = self._state_now()
        key = _key(state)
        if key != self._last_key:
            self._last_key = key
            self._queue.put(_Changed(state, type(event).__name__))

    def ready(self, state: State) -> None:
        """The models are loaded and the stream was opened (or the spine is Degraded and retrying)."""
        self._queue.put(_Ready(state))

    def say(self, level: Level, message: str) -> None:
        self._queue.put(_Line(level, message))

    def stopping(self) -> None:
        """The stop has begun: STOPPING=1 now, from the caller's thread."""
        self._send(notify_message(("STOPPING", "1")))

    def close(self, timeout_s: float) -> None:
        """Writes what is queued and ends the thread (waiting at most `timeout_s`: the stop is bounded)."""
        self._queue.put(_STOP)
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    # ------------------------------------------------------------------------------ on the service thread
    def _run(self) -> None:
        name_this_thread(threading.current_thread().name)
        while True:
            timeout_s = None if self._watchdog is None else max(0.0, self._next_check_s - self._clock())
            try:
                item = self._queue.get(timeout=timeout_s)
            except queue.Empty:
                item = None
            if item is _STOP:
                self._drain()
                return
            if item is not None:
                self._handle(item)
            if self._watchdog is not None and self._clock() >= self._next_check_s:
                self._drain()  # a state change queued before the check is announced before its ping
                self._check(self._watchdog)

    def _drain(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                self._handle(item)

    def _handle(self, item: object) -> None:
        try:
            if isinstance(item, _Changed):
                self._state = type(item.state).__name__
                self._send(notify_message(("STATUS", status_text(item.state))))
                self._log.info(f"{status_text(item.state)} on {item.event}", **_fields(item.state))
            elif isinstance(item, _Ready):
                self._state = type(item.state).__name__
                self._send(ready_message(item.state))
                if self._interval_s is not None:
                    now_s = self._clock()
                    self._watchdog = Watchdog(self._beats(now_s, self._state))
                    self._next_check_s = now_s + self._interval_s
            elif isinstance(item, _Line):
                self._log.line(item.level, item.message)
        except OSError:
            pass  # a full or closed stderr or journal must not end the thread that feeds the watchdog

    def _check(self, watchdog: Watchdog) -> None:
        assert self._interval_s is not None
        now_s = self._clock()
        self._next_check_s = now_s + self._interval_s  # checks at least one interval apart, however late this one
        verdict = watchdog.check(self._beats(now_s, self._state))
        try:
            if verdict.ping:
                self._send(notify_message(("WATCHDOG", "1")))
                self.pings += 1
            if verdict.say is not None:
                self._log.warning(verdict.say)
        except OSError:
            pass

    def _send(self, message: str) -> None:
        self._notifier.send(message)


def _key(state: State) -> tuple[str, int | None, int | None]:
    return type(state).__name__, state_turn(state), state.attempt if isinstance(state, Degraded) else None


def _fields(state: State) -> dict[str, str]:
    turn = state_turn(state)
    return {"STATE": type(state).__name__, **({"TURN": str(turn)} if turn is not None else {})}
