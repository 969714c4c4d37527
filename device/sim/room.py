"""The echo path of the simulated room: speaker output back into the microphone, and the room's noise.

The echo is the speaker signal delayed by `echo_delay_ms`, convolved with a synthetic room impulse response
and scaled by `echo_gain_db`. The impulse response is a direct-path tap followed by exponentially decaying
noise with the room's RT60 — the textbook (Polack) model, which is what an echo canceller has to learn.
Both classes stream: they keep their state across calls, so 10 ms frames give exactly the samples one call
on the whole signal gives. Signals are in int16 sample units (full scale 32768), as float32 so that echo,
noise and speech can be summed before the one rounding to int16 at the microphone.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

from device.sim.scene import RoomSpec

FULL_SCALE = 32768.0

# The tail of the response is cut at 1.5 x RT60, where it has decayed by 90 dB: far below the noise floor,
# and it bounds the per-frame cost (a 0.3 s RT60 at 16 kHz is 7,200 taps, ~0.2 ms per 10 ms frame).
RIR_LENGTH_RT60 = 1.5

# Energy of the direct path relative to the reverberant tail. A device's microphone sits centimetres from
# its own speaker, so the direct path dominates; it also keeps the direct tap the response's largest.
DIRECT_TO_REVERB_DB = 6.0

# Distinct random streams per purpose, so the impulse response and the noise of one seed are independent.
_RIR_STREAM = 1
_NOISE_STREAM = 2


def room_impulse_response(rt60_s: float, rate_hz: int, seed: int) -> npt.NDArray[np.float64]:
    """A unit-energy impulse response: a direct tap at sample 0, then noise decaying 60 dB per `rt60_s`."""
    length = max(2, round(RIR_LENGTH_RT60 * rt60_s * rate_hz))
    time_s = np.arange(length) / rate_hz
    envelope = 10.0 ** (-3.0 * time_s / rt60_s)  # amplitude: -60 dB is a factor of 1000 at rt60_s
    tail = np.random.default_rng([seed, _RIR_STREAM]).standard_normal(length) * envelope
    tail[0] = 0.0
    tail *= math.sqrt(10.0 ** (-DIRECT_TO_REVERB_DB / 10.0) / float(np.sum(tail**2)))
    response = tail
    response[0] = 1.0
    return response / math.sqrt(float(np.sum(response**2)))


class EchoPath:
    """What the microphone hears of the speaker: `process` one frame after another (int16 in, float32 out)."""

    def __init__(self, room: RoomSpec, rate_hz: int) -> None:
        self.rate_hz = rate_hz
        self.delay_samples = round(room.echo_delay_ms * rate_hz / 1000.0)
        self.impulse_response = room_impulse_response(room.rt60_s, rate_hz, room.seed)
        self._taps = self.impulse_response * 10.0 ** (room.echo_gain_db / 20.0)
        # The delay is a separate line rather than leading zero taps: zeros would cost filter time per sample.
        self._delay_line = np.zeros(self.delay_samples, dtype=np.float64)
        self._filter_state = np.zeros(self._taps.size - 1, dtype=np.float64)

    def process(self, speaker_frame: npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
        """The echo of `speaker_frame` (plus the tail of earlier frames), the same length, in sample units."""
        frame = speaker_frame.astype(np.float64)
        joined = np.concatenate((self._delay_line, frame))
        delayed, self._delay_line = joined[: frame.size], joined[frame.size :]
        echo, self._filter_state = lfilter(self._taps, [1.0], delayed, zi=self._filter_state)
        return np.asarray(echo, dtype=np.float32)


class RoomNoise:
    """White noise at an RMS level of `noise_dbfs` (full scale 32768), in sample units; `next` streams it."""

    def __init__(self, noise_dbfs: float, seed: int) -> None:
        self.rms = FULL_SCALE * 10.0 ** (noise_dbfs / 20.0)
        self._rng = np.random.default_rng([seed, _NOISE_STREAM])

    def next(self, samples: int) -> npt.NDArray[np.float32]:
        noise = self._rng.standard_normal(samples)
        noise *= self.rms
        return noise.astype(np.float32)
