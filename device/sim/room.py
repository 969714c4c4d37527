"""The echo path of the simulated room: speaker output back into the microphone, and the room's noise.

The echo is the speaker signal delayed by `echo_delay_ms`, convolved with a synthetic room impulse response
and scaled by `echo_gain_db`. The impulse response is a direct-path tap followed by exponentially decaying
noise with the room's RT60 — the textbook (Polack) model, which is what an echo canceller has to learn.
Both classes stream: they keep their state across calls, so 10 ms frames give exactly the samples one call
on the whole signal gives. Signals are in int16 sample units (full scale 32768), as float32 so that echo,
noise and speech can be summed before the one rounding to int16 at the microphone.

What real sound cards and small speakers add, each off by default (docs/scenes.md, "Hard rooms"):
* `speaker_clip_dbfs`: the speaker saturates softly (`knee * tanh(x / knee)`) before the sound enters the
  room, so the echo carries harmonics the clean reference does not have.
* `drift_ppm`: the mic and speaker clocks differ, so the delay grows (or shrinks) continuously.
* `delay_jumps`: an xrun drops or repeats a period, and the delay steps by that much from then on.
With drift or jumps the delay is fractional and read from the speaker history by 8-point Lagrange
interpolation; without them the original whole-sample delay line runs, sample for sample as before.
"""

from __future__ import annotations

import math
from typing import Any

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


# Fractional delay by Lagrange interpolation over 8 neighbours: at the worst fraction (half a sample) it is
# flat to 0.2 dB at 4 kHz and 0.9 dB at 5 kHz (2 points, linear, would be 3 dB down at 4 kHz), so a drifting
# echo does not change colour each time the delay crosses half a sample. Exact at whole samples.
_LAGRANGE_POINTS = 8
_LAGRANGE_OFFSETS = np.arange(_LAGRANGE_POINTS, dtype=np.int64) - (_LAGRANGE_POINTS // 2 - 1)
_LAGRANGE_DENOMINATORS = np.array(
    [math.prod(float(k - j) for j in _LAGRANGE_OFFSETS.tolist() if j != k) for k in _LAGRANGE_OFFSETS.tolist()]
)


def _lagrange_weights(fraction: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per sample, the weights of the 8 neighbours at `_LAGRANGE_OFFSETS` for a position `fraction` past 0."""
    distance = fraction[:, None] - _LAGRANGE_OFFSETS[None, :]
    ones = np.ones((fraction.size, 1))
    # The product of every distance but one's own, without dividing (a distance is exactly 0 at whole samples).
    left = np.cumprod(np.concatenate((ones, distance[:, :-1]), axis=1), axis=1)
    right = np.cumprod(np.concatenate((ones, distance[:, :0:-1]), axis=1), axis=1)[:, ::-1]
    weights: npt.NDArray[np.float64] = left * right / _LAGRANGE_DENOMINATORS
    return weights


# The weights for fractions in steps of 1/1024 sample, looked up rather than computed per sample (a third of
# the cost of a varying delay otherwise). Rounding the position to 1/2048 sample at most is a 0.03 us timing
# error, far below what any echo canceller resolves; whole samples stay exact (row 0 and row 1024).
_FRACTION_STEPS = 1024
_LAGRANGE_TABLE = _lagrange_weights(np.arange(_FRACTION_STEPS + 1, dtype=np.float64) / _FRACTION_STEPS)


class EchoPath:
    """What the microphone hears of the speaker: `process` one frame after another (int16 in, float32 out)."""

    def __init__(self, room: RoomSpec, rate_hz: int) -> None:
        self.rate_hz = rate_hz
        self.delay_samples = round(room.echo_delay_ms * rate_hz / 1000.0)
        self.impulse_response = room_impulse_response(room.rt60_s, rate_hz, room.seed)
        self._taps = self.impulse_response * 10.0 ** (room.echo_gain_db / 20.0)
        self._filter_state = np.zeros(self._taps.size - 1, dtype=np.float64)
        self._knee: float | None = (
            None if room.speaker_clip_dbfs is None else FULL_SCALE * 10.0 ** (room.speaker_clip_dbfs / 20.0)
        )
        self._drift = room.drift_ppm * 1e-6
        self._jump_at_samples = np.array([round(jump.at_s * rate_hz) for jump in room.delay_jumps], np.int64)
        # The delay after each jump, relative to the start: a cumulative sum, looked up per sample.
        self._jump_total_samples = np.cumsum([0.0] + [jump.ms * rate_hz / 1000.0 for jump in room.delay_jumps])
        self._varying = self._drift != 0.0 or bool(room.delay_jumps)
        # The delay is a separate line rather than leading zero taps: zeros would cost filter time per sample.
        self._delay_line = np.zeros(self.delay_samples, dtype=np.float64)
        # For a varying delay: the speaker samples [_history_start, _position) that a later read may still need.
        self._history = np.zeros(0, dtype=np.float64)
        self._history_start = 0
        self._position = 0

    def delay_samples_at(self, sample: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """The echo delay, in (fractional) samples, of the echo heard at each mic `sample` index."""
        jumps = self._jump_total_samples[np.searchsorted(self._jump_at_samples, sample, side="right")]
        # Never below zero: sound cannot reach the mic before the speaker played it.
        delay: npt.NDArray[np.float64] = np.maximum(self.delay_samples + self._drift * sample + jumps, 0.0)
        return delay

    def process(self, speaker_frame: npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
        """The echo of `speaker_frame` (plus the tail of earlier frames), the same length, in sample units."""
        frame = speaker_frame.astype(np.float64)
        if self._knee is not None:
            frame = self._knee * np.tanh(frame / self._knee)
        if self._varying:
            delayed = self._read_varying(frame)
        else:
            joined = np.concatenate((self._delay_line, frame))
            delayed, self._delay_line = joined[: frame.size], joined[frame.size :]
        echo, self._filter_state = lfilter(self._taps, [1.0], delayed, zi=self._filter_state)
        return np.asarray(echo, dtype=np.float32)

    def _read_varying(self, frame: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The speaker history read `delay_samples_at` earlier, sample by sample, interpolated between samples."""
        history = np.concatenate((self._history, frame))
        end = self._position + frame.size
        now = np.arange(self._position, end, dtype=np.int64)
        source = now - self.delay_samples_at(now)  # where in the speaker stream each echo sample comes from
        whole = np.floor(source)
        absolute = whole.astype(np.int64)[:, None] + _LAGRANGE_OFFSETS
        weights = _LAGRANGE_TABLE[np.rint((source - whole) * _FRACTION_STEPS).astype(np.int64)]
        # Before the stream began the speaker was silent; a delay under 4 samples would need samples not yet
        # played, and reads the newest one instead (no real card is that close).
        indices = np.clip(absolute - self._history_start, 0, history.size - 1)
        values = np.where(absolute >= 0, history[indices], 0.0)
        delayed: npt.NDArray[np.float64] = np.sum(values * weights, axis=1)
        # Keep what the next frames can reach: the longest delay now, any jump still to come, and a margin for
        # the drift over the next frame (0.1 s covers frames up to 100 s at the largest drift, 1000 ppm).
        reach = float(np.max(end - source)) + self._pending_growth_samples(end - 1) + _LAGRANGE_POINTS
        keep_from = max(self._history_start, end - math.ceil(reach) - self.rate_hz // 10)
        self._history = history[keep_from - self._history_start :]
        self._history_start = keep_from
        self._position = end
        return delayed

    def _pending_growth_samples(self, sample: int) -> float:
        """How much longer than at `sample` jumps still to come can make the delay."""
        current = int(np.searchsorted(self._jump_at_samples, sample, side="right"))
        later = self._jump_total_samples[current + 1 :] - self._jump_total_samples[current]
        return max(0.0, float(later.max(initial=0.0)))


class RoomNoise:
    """White noise at an RMS level of `noise_dbfs` (full scale 32768), in sample units; `next` streams it."""

    def __init__(self, noise_dbfs: float, seed: int) -> None:
        self.rms = FULL_SCALE * 10.0 ** (noise_dbfs / 20.0)
        self._rng = np.random.default_rng([seed, _NOISE_STREAM])

    def next(self, samples: int) -> npt.NDArray[np.float32]:
        noise = self._rng.standard_normal(samples)
        noise *= self.rms
        return noise.astype(np.float32)


def room_echo(
    speaker: npt.NDArray[np.int16], room: RoomSpec, rate_hz: int, frame_samples: int
) -> npt.NDArray[np.float32]:
    """What the microphone hears of `speaker` in `room`, plus the room's noise, streamed in frames of
    `frame_samples` as a card delivers them (the echo path keeps its state across frames)."""
    path, noise = EchoPath(room, rate_hz), RoomNoise(room.noise_dbfs, room.seed)
    frames = [
        path.process(speaker[start : start + frame_samples]) + noise.next(frame_samples)
        for start in range(0, speaker.size, frame_samples)
    ]
    return np.concatenate(frames)


def to_int16(signal: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.int16]:
    """A float signal rounded to int16 samples, clipped at full scale."""
    return np.clip(np.round(signal), -32768, 32767).astype(np.int16)
