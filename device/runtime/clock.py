"""Clocks, in samples at the device rate. Decisions never read a clock: the loop reads it once per event."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_samples(self) -> int: ...


class VirtualClock:
    """Advanced by the simulated sound card, one period at a time: the same scene gives the same times."""

    def __init__(self) -> None:
        self.samples = 0

    def now_samples(self) -> int:
        return self.samples


class WallClock:
    """Real elapsed time since construction, converted to samples."""

    def __init__(self, rate_hz: int) -> None:
        self._rate_hz = rate_hz
        self._start_s = time.monotonic()

    def now_samples(self) -> int:
        return int((time.monotonic() - self._start_s) * self._rate_hz)
