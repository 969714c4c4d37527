"""The wall clock, in samples at the device rate. Decisions never read a clock: the loop reads it once per
event. (In virtual time the simulated card's sample counter is the clock; see device/sim/demo.py.)"""

from __future__ import annotations

import time


class WallClock:
    """Real elapsed time since construction, converted to samples."""

    def __init__(self, rate_hz: int) -> None:
        self._rate_hz = rate_hz
        self._start_s = time.monotonic()

    def now_samples(self) -> int:
        return int((time.monotonic() - self._start_s) * self._rate_hz)
