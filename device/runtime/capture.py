"""What the mic heard recently, addressable by absolute sample index (the spine asks for [from, to) slices)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Audio = npt.NDArray[np.int16]


class CaptureHistory:
    """A fixed-size window of the latest mic samples; older samples are overwritten."""

    def __init__(self, capacity_samples: int) -> None:
        self._buffer = np.zeros(capacity_samples, np.int16)
        self._written = 0  # absolute index of the next sample

    def append(self, audio: Audio) -> None:
        total = n = len(audio)
        capacity = len(self._buffer)
        if n >= capacity:  # only the newest `capacity` samples survive; they land where they would have
            audio, n = audio[-capacity:], capacity
        at = (self._written + total - n) % capacity
        first = min(n, capacity - at)
        self._buffer[at : at + first] = audio[:first]
        self._buffer[: n - first] = audio[first:]
        self._written += total

    def slice(self, from_sample: int, to_sample: int) -> Audio:
        """Samples [from, to), clamped to what is still held (the oldest may have been overwritten)."""
        capacity = len(self._buffer)
        start = max(from_sample, self._written - capacity, 0)
        end = min(to_sample, self._written)
        if end <= start:
            return np.zeros(0, np.int16)
        index = np.arange(start, end) % capacity
        return self._buffer[index].copy()
