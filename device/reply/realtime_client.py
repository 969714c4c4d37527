"""The device's connection to an OpenAI-Realtime-compatible server over WebRTC, for threads.

Theory of operation
-------------------
The daemon's jobs are threads (device/runtime/job_threads.py); aiortc is asyncio. So `RealtimeClient` runs its
own event loop on its own thread (`spine-realtime`) and offers a synchronous API; the call itself is
`RealtimeCall` (device/reply/realtime_call.py) on that loop. The turn logic stays on the device: the server's
turn detection is off, and the device says when a turn ends and when to stop.

  | method                 | blocks?                  | what it does                                              |
  |------------------------|--------------------------|-----------------------------------------------------------|
  | connect()              | until `session.updated`  | offer, answer, ICE, `session.update`; raises              |
  |                        | or a timeout             | `RealtimeConnectError` saying which step failed           |
  | begin_turn()           | no                       | `input_audio_buffer.clear`, then the microphone streams   |
  | push_mic(chunk)        | no (any thread)          | 16 kHz int16 in; resampled to 48 kHz and sent, paced       |
  | commit_and_respond()   | until the mic audio went | `input_audio_buffer.commit` + `response.create`           |
  |                        | out (bounded)            |                                                           |
  | text_and_respond(text) | until sent               | a typed request: `conversation.item.create`               |
  |                        |                          | (input_text) + `response.create`                          |
  | cancel(end_ms, item)   | no                       | `response.cancel`, `output_audio_buffer.clear`, and       |
  |                        |                          | `conversation.item.truncate` when something was played    |
  | end_mic()              | no                       | the microphone stops; the server keeps what it got        |
  | discard_turn()         | no                       | the microphone stops, `input_audio_buffer.clear`          |
  | next_event(timeout_s)  | up to timeout_s          | the server's events, typed; and the client's notices      |
  | close()                | bounded                  | hang up, stop the loop                                    |

Remote audio arrives as `RemoteAudio` (16 kHz int16, tagged with its response and item) through `on_audio`,
called on the loop's thread (it must not block), or, without one, through `next_audio(timeout_s)`.

Interruption: the caller knows what it played; `truncate_point_ms(played_ms, received_ms)` is where to cut
(never past the audio received, nothing when nothing was played). The server's errors that answer a cancel,
clear or truncate which crossed the response's own end come back as `ExpectedRace` notices, not errors.

Faults are notices too: a dropped connection, a closed events channel, or no event for `stall_timeout_s` while
a response is under way each post one `CallEnded` and end the call; `connect()` again makes a new one (and
forgets the old call's undelivered events). The API key is never in a message, a repr or a log line.

Importing this module imports aiortc and aiohttp (0.45-0.9 s on the loaded x86 development machine): import it only
for this backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import numpy as np

from device.rates import SPINE_RATE_HZ
from device.reply.realtime_audio import ResampleStream
from device.reply.realtime_call import RealtimeCall
from device.reply.realtime_config import (
    RTC_RATE_HZ,
    Audio,
    CallEnded,
    ConnectTimes,
    Notice,
    RealtimeClosed,
    RealtimeConfig,
    RealtimeConnectError,
    RemoteAudio,
)
from device.reply.realtime_events import ServerEvent

T = TypeVar("T")

CLOSE_BOUND_S = 5.0
"""How long `close()` waits for the call to hang up and the loop to stop."""
DRAIN_MARGIN_S = 2.0
"""`commit_and_respond` waits for the queued microphone audio to go out, plus this (then commits anyway)."""


def truncate_point_ms(played_ms: float, received_ms: float) -> int | None:
    """Where to cut the interrupted item's audio: what was played, never past what was received (the server
    refuses a cut beyond the audio it has); None when nothing of it was played (then nothing is truncated)."""
    point = int(min(played_ms, received_ms))
    return point if point > 0 else None


class RealtimeClient:
    """A realtime call for a threaded caller (see the module docstring). Not itself thread-safe for concurrent
    calls of the same method, except `push_mic` and `cancel`, which any thread may call at any time."""

    def __init__(
        self,
        config: RealtimeConfig,
        on_audio: Callable[[RemoteAudio], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        problem = config.validate()
        if problem is not None:
            raise RealtimeConnectError("rejected", problem)
        self.config = config
        self._clock = clock
        self._events: queue.Queue[ServerEvent | Notice] = queue.Queue()
        self._audio: queue.Queue[RemoteAudio] = queue.Queue()
        self._on_audio = on_audio or self._audio.put
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._call: RealtimeCall | None = None
        self._mic_lock = threading.Lock()  # guards the three fields below between push_mic and the turn's edges
        self._mic_open = False
        self._upsampler = ResampleStream(SPINE_RATE_HZ, RTC_RATE_HZ)
        self.mic_dropped_samples = 0
        """16 kHz samples pushed while no turn was open (dropped: the room is never streamed between turns)."""

    def __repr__(self) -> str:
        return f"RealtimeClient({self.config!r}, connected={self.connected})"

    # ------------------------------------------------------------------------------------------ the call

    def connect(self) -> ConnectTimes:
        """Make a call (hanging up the previous one); returns where the set-up time went."""
        self._hang_up()
        loop = self._ensure_loop()
        self._drain_queues()
        bound_s = sum((self.config.connect_timeout_s, self.config.media_timeout_s, self.config.session_timeout_s))
        try:
            call, times = self._run(self._open_call(), bound_s + 5.0)
        except TimeoutError:
            raise RealtimeConnectError(
                "timeout", f"connecting to {self.config.endpoint} took longer than {bound_s + 5.0:g} s"
            ) from None
        self._call = call
        assert loop is self._loop
        return times

    async def _open_call(self) -> tuple[RealtimeCall, ConnectTimes]:
        call = RealtimeCall(self.config, self._events.put, self._on_audio, self._clock)
        try:
            return call, await call.open()
        except BaseException:
            await call.close()
            self._drain_queues()  # the failed call's notices are not news: the exception says it
            raise

    @property
    def connected(self) -> bool:
        call = self._call
        return call is not None and call.ended is None

    @property
    def ended(self) -> CallEnded | None:
        """Why the current call ended (None while it is up, or before the first call)."""
        call = self._call
        return None if call is None else call.ended

    def begin_turn(self) -> None:
        """Start streaming the microphone for a new turn (the server's input buffer emptied first)."""
        call, loop = self._live()
        with self._mic_lock:
            self._mic_open = True
        loop.call_soon_threadsafe(call.begin_turn)

    def push_mic(self, chunk: Audio) -> None:
        """16 kHz mono int16 microphone audio for the open turn; dropped (counted) when no turn is open."""
        if chunk.dtype != np.int16 or chunk.ndim != 1:
            raise ValueError(f"microphone audio must be 1-D int16 at 16 kHz, got {chunk.ndim}-D {chunk.dtype}")
        call = self._call
        with self._mic_lock:
            if not self._mic_open or call is None:
                self.mic_dropped_samples += len(chunk)
                return
            call.mic.feed(self._upsampler.feed(chunk))

    def end_mic(self) -> None:
        """The turn's speech is over: what was pushed goes out, then the microphone idles (no silence is streamed
        while the device decides whether to answer); the server's input buffer keeps it for the commit. Never
        blocks; does nothing once the call has ended."""
        call, loop = self._call, self._loop
        if call is None or loop is None or call.ended is not None:
            return
        with self._mic_lock:
            if not self._mic_open:
                return
            self._mic_open = False
            call.mic.feed(self._upsampler.finish())
        loop.call_soon_threadsafe(call.mic.drain)

    def commit_and_respond(self) -> None:
        """End the turn's audio and ask for the answer: returns once the commit and `response.create` are sent."""
        call, _ = self._live()
        with self._mic_lock:
            self._mic_open = False
            call.mic.feed(self._upsampler.finish())
        drain_s = call.mic.pending_samples / RTC_RATE_HZ + DRAIN_MARGIN_S
        self._run(call.commit_and_respond(drain_s), drain_s + 5.0)

    def text_and_respond(self, text: str) -> None:
        """Ask for the answer to typed `text` (no microphone audio): returns once both events are sent."""
        call, _ = self._live()
        self._run(call.text_and_respond(text), 5.0)

    def discard_turn(self) -> None:
        """Abandon the open turn without an answer (a stop phrase, another wake word): the microphone stops and
        the server's input buffer is emptied. Never blocks; does nothing once the call has ended."""
        call, loop = self._call, self._loop
        if call is None or loop is None or call.ended is not None:
            return
        with self._mic_lock:  # here, not on the loop: audio the next turn pushes meanwhile must survive
            self._mic_open = False
            self._upsampler.finish()
            call.mic.discard_pending()
        loop.call_soon_threadsafe(call.discard_turn)

    def cancel(self, audio_end_ms: int | None, item_id: str | None) -> None:
        """Barge-in: stop the current response and its audio at once; truncate `item_id` at `audio_end_ms` when
        both are given (see `truncate_point_ms`). Never blocks; does nothing once the call has ended."""
        call, loop = self._call, self._loop
        if call is None or loop is None or call.ended is not None:
            return
        with self._mic_lock:
            if self._mic_open:  # a turn still open ends here; what the filter held is the next turn's no more
                self._mic_open = False
                call.mic.feed(self._upsampler.finish())
        loop.call_soon_threadsafe(call.cancel, audio_end_ms, item_id)

    def received_ms(self, item_id: str) -> int:
        """Milliseconds of the item's audio received so far (0 for an unknown item or no call)."""
        call = self._call
        return 0 if call is None else call.received_ms(item_id)

    def next_event(self, timeout_s: float) -> ServerEvent | Notice | None:
        """The next server event or notice, in order; None if none came within `timeout_s`."""
        try:
            return self._events.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def next_audio(self, timeout_s: float) -> RemoteAudio | None:
        """The next chunk of remote audio (only when no `on_audio` was given); None if none within `timeout_s`."""
        try:
            return self._audio.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def close(self) -> None:
        """Hang up and stop the loop's thread; safe to call more than once. `connect()` may follow."""
        self._hang_up()
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(CLOSE_BOUND_S)
        if not thread.is_alive():
            loop.close()

    def __enter__(self) -> RealtimeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ plumbing

    def _live(self) -> tuple[RealtimeCall, asyncio.AbstractEventLoop]:
        call, loop = self._call, self._loop
        if call is None or loop is None:
            raise RealtimeClosed("no realtime call is open: connect() first")
        if call.ended is not None:
            raise RealtimeClosed(f"the realtime call has ended: {call.ended.message}; connect() again")
        return call, loop

    def _hang_up(self) -> None:
        call, self._call = self._call, None
        with self._mic_lock:
            self._mic_open = False
            self._upsampler.finish()
        if call is not None and self._loop is not None:
            with contextlib.suppress(TimeoutError, RuntimeError):  # a loop already stopping: the call goes with it
                self._run(call.close(), CLOSE_BOUND_S)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="spine-realtime", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float) -> T:
        loop = self._loop
        if loop is None:
            coroutine.close()
            raise RealtimeClosed("the realtime client is closed")
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()  # the work stops on the loop too, not only the wait for it
            raise

    def _drain_queues(self) -> None:
        for pending in (self._events, self._audio):
            while True:
                try:
                    pending.get_nowait()
                except queue.Empty:
                    break


__all__ = [
    "CallEnded",
    "ConnectTimes",
    "RealtimeClient",
    "RealtimeClosed",
    "RealtimeConfig",
    "RealtimeConnectError",
    "RemoteAudio",
    "truncate_point_ms",
]
