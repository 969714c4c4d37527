"""Sample helpers the SPSC ring's tests share: both overrun policies, a counting sequence, reading all there is."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from device.audio.ring import Overrun, SpscRing

POLICIES: tuple[Overrun, ...] = ("refuse", "drop_oldest")


def ramp(first: int, count: int) -> npt.NDArray[np.int16]:
    """`count` consecutive sample values starting at `first`, wrapping like int16 does."""
    return np.arange(first, first + count, dtype=np.int64).astype(np.int16)


def read_all(ring: SpscRing, size: int) -> list[int]:
    out = np.full(size, -1, np.int16)
    got = ring.read_into(out)
    values: list[int] = out[:got].tolist()
    return values
