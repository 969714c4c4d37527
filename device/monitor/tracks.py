"""Audio tracks for the browser: the cleaned mic and what the speaker played, as 20 ms frames at 16 kHz.

The FSM thread copies periods into the feed only while some browser listens (`MonitorFeed.audio_wanted`);
`AudioFanout.pump` moves them, on the monitor's thread, into every live track's buffer, and each track's
`recv` (paced by aiortc's clock, one frame per 20 ms) takes a frame, or silence when the buffer runs dry.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections import deque

import av
import numpy as np
import numpy.typing as npt
from aiortc import MediaStreamTrack

from device.monitor.feed import MonitorFeed

Audio = npt.NDArray[np.int16]
FRAME_S = 0.02
MAX_BUFFERED_S = 0.5  # a track that falls behind drops its oldest audio rather than drift further late


class TapTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, source: str, rate_hz: int) -> None:
        super().__init__()
        self.source = source
        self.listening = False
        self._rate_hz = rate_hz
        self._frame_samples = round(rate_hz * FRAME_S)
        self._buffer: deque[Audio] = deque()
        self._buffered = 0
        self._started_s: float | None = None
        self._pts = 0
        self.frames_sent = 0

    def push(self, audio: Audio) -> None:
        self._buffer.append(audio)
        self._buffered += len(audio)
        while self._buffered > MAX_BUFFERED_S * self._rate_hz:
            self._buffered -= len(self._buffer.popleft())

    async def recv(self) -> av.AudioFrame:
        if self._started_s is None:
            self._started_s = time.monotonic()
        else:
            self._pts += self._frame_samples
            delay_s = self._started_s + self._pts / self._rate_hz - time.monotonic()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
        samples = self._take(self._frame_samples)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self._rate_hz
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, self._rate_hz)
        self.frames_sent += 1
        return frame

    def _take(self, count: int) -> Audio:
        out = np.zeros(count, np.int16)
        filled = 0
        while filled < count and self._buffer:
            head = self._buffer[0]
            used = min(count - filled, len(head))
            out[filled : filled + used] = head[:used]
            filled += used
            if used == len(head):
                self._buffer.popleft()
            else:
                self._buffer[0] = head[used:]
            self._buffered -= used
        return out


class AudioFanout:
    """Every live track of every browser, fed from the feed's two audio queues."""

    def __init__(self, feed: MonitorFeed) -> None:
        self._feed = feed
        self.tracks: list[TapTrack] = []

    def add(self, track: TapTrack) -> None:
        self.tracks.append(track)

    def remove(self, track: TapTrack) -> None:
        if track in self.tracks:
            self.tracks.remove(track)
        self.update_wanted()

    def update_wanted(self) -> None:
        self._feed.audio_wanted = any(track.listening for track in self.tracks)

    def pump(self) -> None:
        for source, queue in (("cleaned", self._feed.cleaned_audio), ("speaker", self._feed.played_audio)):
            while queue:
                try:
                    period = queue.popleft()
                except IndexError:
                    break
                for track in self.tracks:
                    if track.source == source and track.listening:
                        track.push(period)
