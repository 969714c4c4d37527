"""Audio on a realtime call's WebRTC track: 20 ms frames of 48 kHz mono int16, paced on the wall clock, in bursts;
and the rate changes between Spine's 16 kHz and WebRTC's 48 kHz.

`PacedTrack` is the sending side, for the device's microphone (device/reply/realtime_client.py) and the test
peer's voice (device/testing/realtime_peer.py). It sends only in bursts: idle, `recv` waits and no packet goes
out (between turns the room is not streamed anywhere); `start()` begins a burst, `drain()` ends it once what was
fed has gone out. Each burst ends with `tail_frames` of silence, because the receiving end holds the last packets
it got: aiortc's audio jitter buffer releases a frame only once four later ones have arrived (capacity 16,
prefetch 4), so without the tail the last 80 ms of a burst would wait there until the next burst.

`on_frame(pieces)` is told, for each frame sent, how many of its samples came from which tag (the peer tags its
audio by response, to count what of each response went out); padding is tagged None.

Rates: a `ResampleStream` (soxr, stateful, so chunk edges leave no clicks) for 16 -> 48 kHz and back, and
`mono_48k` for the decoded frames aiortc gives (Opus decodes to 48 kHz stereo s16).
"""

from __future__ import annotations

import asyncio
import enum
import fractions
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import soxr
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from device.reply.realtime_config import DEFAULT_TAIL_FRAMES, RTC_RATE_HZ

Audio = npt.NDArray[np.int16]
Tag = Hashable | None
FramePieces = list[tuple[Tag, int]]

FRAME_S = 0.02
FRAME_SAMPLES = 960
MAX_LAG_S = 0.2
"""Fallen this far behind the pace (a stalled loop), the track resets its pace rather than send a burst."""


class _State(enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    DRAINING = "draining"


class PacedTrack(MediaStreamTrack):
    """An outbound audio track fed with 48 kHz mono int16 audio, sent in paced bursts (see the module docstring).

    `feed` and `discard_pending` may be called from any thread; `start`, `drain` and `clear` only on the event
    loop the track is used on (the one its peer connection runs on)."""

    kind = "audio"

    def __init__(
        self,
        tail_frames: int = DEFAULT_TAIL_FRAMES,
        on_frame: Callable[[FramePieces], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._tail_frames = tail_frames
        self._on_frame = on_frame
        self._clock = clock
        self._lock = threading.Lock()  # guards the pending audio between a feeding thread and the loop
        self._pending: deque[tuple[Tag, Audio]] = deque()
        self._pending_samples = 0
        self._state = _State.IDLE
        self._wake: asyncio.Event | None = None
        self._tail_left = 0
        self._on_drained: list[Callable[[], None]] = []
        self._next_at_s: float | None = None
        self._pts = 0
        self.frames_sent = 0
        self.underrun_frames = 0
        """Frames of a running burst padded because nothing (or not enough) had been fed."""

    # ---- feeding (any thread)

    def feed(self, audio: Audio, tag: Tag = None) -> None:
        if len(audio) == 0:
            return
        with self._lock:
            self._pending.append((tag, audio))
            self._pending_samples += len(audio)

    @property
    def pending_samples(self) -> int:
        with self._lock:
            return self._pending_samples

    @property
    def idle(self) -> bool:
        return self._state is _State.IDLE

    # ---- control (the loop's thread)

    def start(self) -> None:
        """Begin (or continue) a burst: frames go out at the real-time pace, padded with silence if short."""
        self._state = _State.RUNNING
        self._tail_left = 0
        self._event().set()

    def drain(self, on_drained: Callable[[], None] | None = None) -> None:
        """End the burst once the audio fed so far has gone out: `on_drained` is called then (at once if it
        already has), the tail of silence follows, then the track idles."""
        if on_drained is not None:
            self._on_drained.append(on_drained)
        if self._state is _State.IDLE:
            self._fire_drained()
            return
        if self._state is _State.RUNNING:
            self._state = _State.DRAINING
            self._tail_left = self._tail_frames

    def clear(self) -> list[tuple[Tag, int]]:
        """Drop what was fed and not yet sent, and end the burst (the tail follows); returns how many samples of
        each tag went."""
        dropped = self.discard_pending()
        self.drain()
        return dropped

    def discard_pending(self) -> list[tuple[Tag, int]]:
        """Drop what was fed and not yet sent (any thread: in order with `feed`); how many samples of each tag."""
        with self._lock:
            dropped = [(tag, len(audio)) for tag, audio in self._pending]
            self._pending.clear()
            self._pending_samples = 0
        return dropped

    def stop(self) -> None:
        super().stop()
        if self._wake is not None:
            self._wake.set()  # a recv waiting while idle ends now (MediaStreamError)

    # ---- the sender's side (aiortc calls recv on the loop)

    async def recv(self) -> av.AudioFrame:
        while self._state is _State.IDLE:
            if self.readyState != "live":
                raise MediaStreamError
            wake = self._event()
            wake.clear()
            await wake.wait()
        if self.readyState != "live":
            raise MediaStreamError
        await self._keep_pace()
        samples, pieces, fed_samples = self._take_frame()
        if self._on_frame is not None:
            self._on_frame(pieces)
        self._after_frame(fed_samples > 0)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RTC_RATE_HZ
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RTC_RATE_HZ)
        self._pts += FRAME_SAMPLES
        self.frames_sent += 1
        return frame

    async def _keep_pace(self) -> None:
        now_s = self._clock()
        if self._next_at_s is None or now_s - self._next_at_s > MAX_LAG_S:
            self._next_at_s = now_s  # a burst's first frame goes at once
        elif self._next_at_s > now_s:
            await asyncio.sleep(self._next_at_s - now_s)
        self._next_at_s += FRAME_S

    def _take_frame(self) -> tuple[Audio, FramePieces, int]:
        out = np.zeros(FRAME_SAMPLES, np.int16)
        pieces: FramePieces = []
        filled = 0
        with self._lock:
            while filled < FRAME_SAMPLES and self._pending:
                tag, head = self._pending[0]
                used = min(FRAME_SAMPLES - filled, len(head))
                out[filled : filled + used] = head[:used]
                filled += used
                pieces.append((tag, used))
                if used == len(head):
                    self._pending.popleft()
                else:
                    self._pending[0] = (tag, head[used:])
                self._pending_samples -= used
        if filled < FRAME_SAMPLES:
            pieces.append((None, FRAME_SAMPLES - filled))
            if self._state is _State.RUNNING:
                self.underrun_frames += 1
        return out, pieces, filled

    def _after_frame(self, carried_audio: bool) -> None:
        if self._state is not _State.DRAINING or self.pending_samples:
            return
        self._fire_drained()  # the last audio fed has gone out (with this frame, or before it)
        if not carried_audio:
            self._tail_left -= 1  # this frame was one of the tail's
        if self._tail_left <= 0:
            self._state = _State.IDLE
            self._next_at_s = None

    def _fire_drained(self) -> None:
        callbacks, self._on_drained = self._on_drained, []
        for callback in callbacks:
            callback()

    def _event(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()  # made on the loop's thread, at first use
        return self._wake


RESAMPLE_QUALITY = "LQ"
"""soxr's low quality: it holds back 6 ms of audio (its filter's delay) where the high quality holds 21 ms, and
each direction is on the path from the end of speech to the first remote audio; for speech at 16 kHz the
difference in quality is inaudible (its passband still ends within a few percent of 8 kHz)."""


class ResampleStream:
    """Int16 mono audio from one rate to another, chunk by chunk, with no seams between chunks."""

    def __init__(self, from_hz: int, to_hz: int) -> None:
        self._from_hz, self._to_hz = from_hz, to_hz
        self._stream = self._new()

    def _new(self) -> Any:
        return soxr.ResampleStream(self._from_hz, self._to_hz, 1, dtype="int16", quality=RESAMPLE_QUALITY)

    def feed(self, audio: Audio) -> Audio:
        if self._from_hz == self._to_hz:
            return audio
        out: Audio = self._stream.resample_chunk(audio)
        return out

    def finish(self) -> Audio:
        """What the filter still holds (its delay's worth), then a fresh start for the next stretch."""
        if self._from_hz == self._to_hz:
            return np.zeros(0, np.int16)
        out: Audio = self._stream.resample_chunk(np.zeros(0, np.int16), last=True)
        self._stream = self._new()
        return out


def mono_48k(frame: av.AudioFrame) -> Audio:
    """A decoded frame as 48 kHz mono int16 (the channels averaged; another rate converted)."""
    if frame.format.name not in ("s16", "s16p"):
        raise ValueError(f"expected s16 audio frames, got {frame.format.name}")
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    planes = data if frame.format.is_planar else data.reshape(-1, channels).T
    mono: Audio = (planes.astype(np.int32).sum(axis=0) // channels).astype(np.int16)
    if frame.sample_rate != RTC_RATE_HZ:
        converted: Audio = soxr.resample(mono, frame.sample_rate, RTC_RATE_HZ).astype(np.int16)
        return converted
    return mono
