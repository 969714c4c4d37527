"""The realtime backend's one connection for the daemon: made in the background, remade with back-off.

`RealtimeLink` owns the daemon's one `RealtimeClient` (device/reply/realtime_client.py) and a thread,
`spine-realtime-link`, that connects it: at start, and again after every fault, waiting a back-off that doubles
from `backoff_first_s` to `backoff_max_s` between failed attempts (`ConnectSchedule`: pure, tested with numbers).
A refused key waits the longest back-off at once: retrying it sooner cannot help. A turn that needs the call
while it is down (the user spoke, or typed) brings the next attempt forward, once per turn, so the first turn
after a server comes back is not left waiting out a 30 s back-off. A failed connect is never fatal: the turns
that need the call meanwhile fail (a short apology, or the local responder as fallback; the reply job decides
nothing either: it reports, the core apologises).

Who calls what, and from which thread:

  | caller                  | calls                         | blocks?                                          |
  |-------------------------|-------------------------------|--------------------------------------------------|
  | FSM thread (mic feed)   | begin_turn, push_mic, end_mic | never (not connected: False, and a reconnect     |
  |                         |                               | is asked for)                                    |
  | FSM thread (job abort)  | client().cancel               | never                                            |
  | reply worker            | wait_connected, fault         | wait_connected: up to its timeout                |
  | link thread             | connect                       | its own thread only                              |

Each change of the link is reported once through `report(up, cause, detail)` (the daemon posts it as
`RemoteLinkChanged`), and counted (`counts`). A failed attempt with the same cause as the last one reported
while the link is down is not news (a wrong key is said once, not at every retry): it is only counted
(`attempts`). The client module (aiortc, 0.5-0.9 s to import) is imported on
the link thread, so the daemon's start does not wait for it. The key never leaves `RealtimeConfig`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from device.reply.realtime_config import RealtimeConfig, RealtimeConnectError, RealtimeError

if TYPE_CHECKING:
    from device.reply.realtime_client import RealtimeClient

Report = Callable[[bool, str, str], None]

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
WATCH_S = 1.0
"""How often the link thread looks whether an idle call ended (a server hanging up between turns)."""


@dataclass
class ConnectSchedule:
    """When the link tries to connect next, and which failures are news. Pure: the caller says what time it is
    (the link's monotonic clock, in seconds)."""

    first_s: float = BACKOFF_FIRST_S
    max_s: float = BACKOFF_MAX_S
    failures: int = 0
    """Failed attempts since the last call was up (or since the start)."""
    next_attempt_s: float = 0.0
    reported: str | None = None
    """The cause last reported since the link went down (None while up)."""
    wanted_for: int | None = None
    """The turn that last brought an attempt forward."""

    def failed(self, now_s: float, cause: str) -> tuple[float, bool]:
        """An attempt failed with `cause` (a `RealtimeConnectError.failure`): the wait before the next attempt,
        and whether this failure is news (its cause differs from the one last reported while down)."""
        self.failures += 1
        doubling_s = min(self.first_s * 2 ** (self.failures - 1), self.max_s)
        wait_s = self.max_s if cause == "auth" else doubling_s  # the same key is refused again: no use asking sooner
        self.next_attempt_s = now_s + wait_s
        news = cause != self.reported
        self.reported = cause
        return wait_s, news

    def connected(self) -> None:
        self.failures, self.reported = 0, None

    def dropped(self, now_s: float, cause: str) -> None:
        """A call that was up ended (reported by the caller): try again after the first back-off."""
        self.failures, self.reported = 1, cause
        self.next_attempt_s = now_s + self.first_s

    def wanted(self, now_s: float, turn: int) -> bool:
        """`turn` needs the call and it is down: the next attempt is now, once per turn (a turn's every period
        asks; a wrong key is then tried once per turn, never in a storm). True when it moved the attempt."""
        if turn == self.wanted_for:
            return False
        self.wanted_for = turn
        if self.next_attempt_s <= now_s:
            return False
        self.next_attempt_s = now_s
        return True

    def due(self, now_s: float) -> bool:
        return now_s >= self.next_attempt_s


class RealtimeLink:
    def __init__(
        self,
        config: RealtimeConfig,
        report: Report,
        *,
        backoff_first_s: float = BACKOFF_FIRST_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._report = report
        self._monotonic = monotonic
        self._changed = threading.Condition()
        self._client: RealtimeClient | None = None
        self._up = False
        self.schedule = ConnectSchedule(backoff_first_s, backoff_max_s)
        """Guarded by `_changed`."""
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.streamed_turn: int | None = None
        """The turn whose microphone went to the current call (FSM thread writes; the reply job reads)."""
        self.heard_turn: int | None = None
        """The turn of the utterance the spine heard last, streamed or not (`RealtimeMic` writes it): a reply for
        another turn was typed."""
        self.counts: Counter[str] = Counter()
        """Changes of the link by cause ("connected", a connect failure's step, "dropped", "stalled")."""
        self.attempts: Counter[str] = Counter()
        """Connect attempts by outcome ("connected", or the failure's step), reported or not."""
        self.last_connect_ms: float | None = None
        self.scale = 1.0
        """The words' stretch learned from answers heard whole (device/reply/realtime_words.py)."""

    # ------------------------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="spine-realtime-link", daemon=True)
            self._thread.start()

    def close(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(10.0)
        client = self._client
        if client is not None:
            client.close()

    @property
    def up(self) -> bool:
        client = self._client
        return self._up and client is not None and client.connected

    def client(self) -> RealtimeClient | None:
        """The client, when a call is up (never blocks)."""
        return self._client if self.up else None

    def wait_connected(self, timeout_s: float, for_turn: int | None = None) -> RealtimeClient | None:
        """The client once a call is up, waiting up to `timeout_s` for the link thread to make one; `for_turn`:
        that turn needs it, so a link waiting out a back-off tries now (once per turn)."""
        until_s = self._monotonic() + timeout_s
        if for_turn is not None:
            self._want(for_turn)
        with self._changed:
            while not self.up and not self._stopping:
                self._changed.notify_all()  # a call that ended between turns is found at once
                left_s = until_s - self._monotonic()
                if left_s <= 0:
                    return None
                self._changed.wait(min(left_s, 0.1))
        return self.client()

    def fault(self, cause: str, detail: str) -> None:
        """A turn found the call broken (dropped, stalled): say so once, and make a new call after the back-off."""
        with self._changed:
            if not self._up:
                return
            self._up = False
            self.schedule.dropped(self._monotonic(), cause)
            self._changed.notify_all()
        self._said(False, cause, detail)

    # ------------------------------------------------------------------------------------------ the mic

    def begin_turn(self, turn: int) -> bool:
        """Stream the microphone to the call for `turn`; False when no call is up (then one is asked for)."""
        client = self.client()
        if client is None:
            self._check_idle_drop()
            self._want(turn)
            return False
        try:
            client.begin_turn()
        except RealtimeError:
            return False
        self.streamed_turn = turn
        return True

    def push_mic(self, chunk: npt.NDArray[np.int16]) -> None:
        client = self._client
        if client is not None:
            client.push_mic(chunk)

    def end_mic(self) -> None:
        client = self._client
        if client is not None:
            client.end_mic()

    def _want(self, turn: int) -> None:
        with self._changed:
            if not self._up and self.schedule.wanted(self._monotonic(), turn):
                self._changed.notify_all()

    # ------------------------------------------------------------------------------------------ the thread

    def _run(self) -> None:
        from device.reply.realtime_client import RealtimeClient  # aiortc: imported here, off the start's path

        client = RealtimeClient(self.config)
        self._client = client
        while True:
            with self._changed:
                while not self._stopping and (self._up or not self.schedule.due(self._monotonic())):
                    wait_s = WATCH_S if self._up else self.schedule.next_attempt_s - self._monotonic()
                    self._changed.wait(max(0.01, min(wait_s, WATCH_S)))
                    if self._up and not client.connected:
                        break  # the call ended between turns: found below
                if self._stopping:
                    return
            if self._up:
                self._check_idle_drop()
                continue
            self.attempt(client)

    def attempt(self, client: RealtimeClient) -> None:
        """One connect attempt and what follows from it (the link thread's; tests call it directly)."""
        try:
            times = client.connect()
        except RealtimeConnectError as error:
            self._failed(error.failure, str(error))
            return
        except RealtimeError as error:  # e.g. the client was closed meanwhile
            self._failed("session", str(error))
            return
        with self._changed:
            self._up = True
            self.schedule.connected()
            self.last_connect_ms = times.total_ms
            self.attempts["connected"] += 1
            self._changed.notify_all()
        self._said(True, "connected", f"connected to {self.config.endpoint} in {times.total_ms:.0f} ms")

    def _failed(self, cause: str, message: str) -> None:
        with self._changed:
            self.attempts[cause] += 1
            wait_s, news = self.schedule.failed(self._monotonic(), cause)
        if not news:
            return
        if cause == "auth":
            retry = f"retrying every {wait_s:g} s, and at each turn; a new key needs a restart of spine"
        else:
            retry = f"retrying in {wait_s:g} s, then with a back-off up to {self.schedule.max_s:g} s, and at each turn"
        self._said(False, cause, f"{message} ({retry})")

    def _check_idle_drop(self) -> None:
        client = self._client
        ended = None if client is None else client.ended
        if self._up and ended is not None:
            self.fault(ended.reason, ended.message)
        else:
            with self._changed:
                self._changed.notify_all()

    def _said(self, up: bool, cause: str, detail: str) -> None:
        self.counts[cause] += 1
        self._report(up, cause, detail)
