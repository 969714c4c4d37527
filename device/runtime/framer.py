"""Periods in, fixed-size model frames out: each model hearing runs wants its own frame size (Silero 512 samples,
openWakeWord 1280), and the mic arrives in periods of another."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Audio = npt.NDArray[np.int16]


class Framer:
    """Collects periods into fixed-size model frames, remembering the sample index of each frame's start."""

    def __init__(self, frame_samples: int) -> None:
        self._size = frame_samples
        self._buffer = np.zeros(0, np.int16)
        self._start = 0

    def push(self, audio: Audio, start_sample: int) -> list[tuple[int, Audio]]:
        if not len(self._buffer):
            self._start = start_sample
        self._buffer = np.concatenate([self._buffer, audio])
        frames = []
        while len(self._buffer) >= self._size:
            frames.append((self._start, self._buffer[: self._size]))
            self._buffer = self._buffer[self._size :]
            self._start += self._size
        return frames
