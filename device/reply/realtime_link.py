"""The realtime backend's one connection for the daemon: made in the background, remade with back-off.

`RealtimeLink` owns the daemon's one `RealtimeClient` (device/reply/realtime_client.py) and a thread,
`spine-realtime-link`, that connects it: at start, and again after every fault, waiting a back-off that doubles
from `backoff_first_s` to `backoff_max_s` between failed attempts. A failed connect is never fatal: the turns
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
`RemoteLinkChanged`), and counted (`counts`). The client module (aiortc, 0.5-0.9 s to import) is imported on
the link thread, so the daemon's start does not wait for it. The key never leaves `RealtimeConfig`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
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
        self._backoff_first_s, self._backoff_max_s = backoff_first_s, backoff_max_s
        self._monotonic = monotonic
        self._changed = threading.Condition()
        self._client: RealtimeClient | None = None
        self._up = False
        self._failures = 0
        self._next_attempt_s = 0.0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.streamed_turn: int | None = None
        """The turn whose microphone went to the current call (FSM thread writes; the reply job reads)."""
        self.counts: Counter[str] = Counter()
        """Changes of the link by cause ("connected", a connect failure's step, "dropped", "stalled")."""
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

    def wait_connected(self, timeout_s: float) -> RealtimeClient | None:
        """The client once a call is up, waiting up to `timeout_s` for the link thread to make one."""
        until_s = self._monotonic() + timeout_s
        with self._changed:
            while not self.up and not self._stopping:
                self._changed.notify_all()  # a link waiting out a back-off looks again (it keeps its pace)
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
            self._failures = 1
            self._next_attempt_s = self._monotonic() + self._backoff_first_s
            self._changed.notify_all()
        self._said(False, cause, detail)

    # ------------------------------------------------------------------------------------------ the mic

    def begin_turn(self, turn: int) -> bool:
        """Stream the microphone to the call for `turn`; False when no call is up (then one is asked for)."""
        client = self.client()
        if client is None:
            self._check_idle_drop()
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

    # ------------------------------------------------------------------------------------------ the thread

    def _run(self) -> None:
        from device.reply.realtime_client import RealtimeClient  # aiortc: imported here, off the start's path

        client = RealtimeClient(self.config)
        self._client = client
        while True:
            with self._changed:
                while not self._stopping and (self._up or self._monotonic() < self._next_attempt_s):
                    wait_s = WATCH_S if self._up else self._next_attempt_s - self._monotonic()
                    self._changed.wait(max(0.01, min(wait_s, WATCH_S)))
                    if self._up and not client.connected:
                        break  # the call ended between turns: found below
                if self._stopping:
                    return
            if self._up:
                self._check_idle_drop()
                continue
            self._connect(client)

    def _connect(self, client: RealtimeClient) -> None:
        try:
            times = client.connect()
        except RealtimeConnectError as error:
            with self._changed:
                self._failures += 1
                backoff_s = min(self._backoff_first_s * 2 ** (self._failures - 1), self._backoff_max_s)
                self._next_attempt_s = self._monotonic() + backoff_s
            self._said(False, error.failure, f"{error} (next attempt in {backoff_s:g} s)")
            return
        except RealtimeError as error:  # e.g. the client was closed meanwhile
            with self._changed:
                self._next_attempt_s = self._monotonic() + self._backoff_max_s
            self._said(False, "session", str(error))
            return
        with self._changed:
            self._up, self._failures = True, 0
            self.last_connect_ms = times.total_ms
            self._changed.notify_all()
        self._said(True, "connected", f"connected to {self.config.endpoint} in {times.total_ms:.0f} ms")

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
