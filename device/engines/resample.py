"""Sample-rate conversion for int16 mono audio (Piper speaks at 22,050 Hz, the device runs at 16 kHz)."""

from __future__ import annotations

from math import gcd

import numpy as np
import numpy.typing as npt
from scipy.signal import resample_poly

Audio = npt.NDArray[np.int16]

_INT16_MIN = -32768
_INT16_MAX = 32767


def resample_int16(audio: Audio, from_hz: int, to_hz: int) -> Audio:
    """`audio` (1-D int16) resampled from `from_hz` to `to_hz` with a polyphase filter.

    The ratio is reduced by the gcd (22,050 -> 16,000 is up 320, down 441) so the filter stays small. The
    output has ceil(len * to_hz / from_hz) samples, rounded and clipped back to int16 (the filter's ringing
    can overshoot full scale).
    """
    if audio.dtype != np.int16 or audio.ndim != 1:
        raise ValueError(f"expected 1-D int16 audio, got {audio.ndim}-D {audio.dtype}")
    if from_hz <= 0 or to_hz <= 0:
        raise ValueError(f"sample rates must be positive, got {from_hz} -> {to_hz}")
    if from_hz == to_hz or len(audio) == 0:
        return audio.copy()
    common = gcd(from_hz, to_hz)
    filtered = np.asarray(resample_poly(audio.astype(np.float64), to_hz // common, from_hz // common), np.float64)
    return np.clip(np.rint(filtered), _INT16_MIN, _INT16_MAX).astype(np.int16)
