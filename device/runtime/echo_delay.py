"""The echo's delay, tracked on the waveform while the assistant plays: where in the mic is what it played?

Why. The sharp echo prediction (device/runtime/echo_reference.py) needs the delay between a played sample and its
echo within `DELAY_SLACK_MS`. On a quiet machine the delay holds still and the canceller's 0.5 s GCC blocks are
enough. Under CPU load it does not: measured on `spine run` through PulseAudio with both cores busy, each output
underrun moved the echo later by 5-130 ms, the delay climbed from 30 ms to 360-480 ms over a few seconds and then
snapped back to 30 ms when the stream was re-prepared, some of the moves with no xrun reported at all. Judged at a
stale delay the echo looks like the user (Spine talks to itself); judged at every delay for seconds after each
xrun, the user is missed. This tracker finds the delay again within half a second of a move.

How. Every `HOP_SAMPLES` while the reference was active, the last `WINDOW_SAMPLES` of the raw mic are
cross-correlated with the reference up to `MAX_DELAY_SAMPLES` before them, with the phase transform (GCC-PHAT:
every frequency votes equally, so the peak is the share of the mic that is the reference at that lag, whatever the
levels). A delay is taken (`delay_samples`) when two estimates in a row agree within `AGREE_SAMPLES`, each
peaking at least `MIN_PEAK`, or one peaks at least `SURE_PEAK`: on 690 windows of a loaded real stream, unrelated
audio (the mic against the reference of 30 s earlier) peaked above `MIN_PEAK` in 1.4 % of the windows and above
`SURE_PEAK` in none. After `forget(at_sample)` (an xrun) only windows that start after `at_sample` count, so the
delay taken next is the moved one.

The path's own latency is the shortest delay taken (`shortest_samples`): measured under load, the delay climbed
with each underrun and then fell straight back to it, with no xrun reported; hearing judges the echo at that
delay too while the tracked one is longer.

Pure numpy on the FSM thread: three FFTs of 32768 points per estimate, about 1 ms, ten times a second while the
assistant's echo can be in the mic; nothing while it is quiet.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Audio = npt.NDArray[np.int16]
Floats = npt.NDArray[np.float64]

WINDOW_SAMPLES = 4096
"""256 ms of mic per estimate: long enough for a clear peak on speech (median 0.18 on the loaded stream), short
enough that a window wholly after a move comes within half a second of it."""
MAX_DELAY_SAMPLES = 24000
"""1.5 s: under load the delay was seen at 870 ms, past AEC3's range (500 ms); beyond this it is not sought."""
HOP_SAMPLES = 1536
"""An estimate every 96 ms (three voice-detector chunks)."""
MIN_PEAK = 0.12
"""Two agreeing estimates must each peak this high."""
SURE_PEAK = 0.3
"""One estimate this high is taken alone."""
AGREE_SAMPLES = 16
"""Two estimates within 1 ms are the same delay."""
TAPER_SAMPLES = 512
"""The fade at each end of the mic's window (32 ms)."""
SILENT_PEAK = 32
"""A played period peaking at most this (-60 dBFS) is silence (resampling leaves +-1 values in digital silence)."""
ACTIVE_RMS = 100.0
"""Reference and mic RMS (int16 units, -50 dBFS) below which a window holds nothing to correlate."""


class EchoDelayTracker:
    """`push(mic, played)` every period (the raw mic and what was played in that period, aligned as the echo
    reference model wants them); `delay_samples` is the echo's delay once found."""

    def __init__(self) -> None:
        self._span = WINDOW_SAMPLES + MAX_DELAY_SAMPLES
        self._fft = 1 << (self._span - 1).bit_length()
        self._reference: Floats = np.zeros(self._span)  # rings: sample n sits at n % length
        self._mic: Floats = np.zeros(WINDOW_SAMPLES)
        # The mic's window fades in and out: cut square, its edges are clicks that the phase transform correlates
        # with any onset in the reference, and they peaked at the ends of the lag range (0 and 1 s) at up to 0.3.
        ramp = np.hanning(2 * TAPER_SAMPLES)
        self._taper: Floats = np.concatenate((ramp[:TAPER_SAMPLES], np.ones(WINDOW_SAMPLES - 2 * TAPER_SAMPLES),
                                              ramp[TAPER_SAMPLES:]))  # fmt: skip
        self._pushed = 0  # samples pushed so far: the sample index just after the newest
        self._since_estimate = 0
        self._counts_from = WINDOW_SAMPLES  # the first window end whose whole window may count
        self._previous: tuple[int, float] | None = None  # the last estimate (delay, peak), for agreement
        self._last_taken: int | None = None
        self._played_at = -MAX_DELAY_SAMPLES - WINDOW_SAMPLES  # the end of the last period that played something
        self.delay_samples: int | None = None
        """The echo's delay after the reference, samples; None until found (and after `forget` until found again)."""
        self.shortest_samples: int | None = None
        """The shortest delay taken so far: the path's own latency, which a sound server returns to at once when it
        re-prepares its stream after growing its buffer through underruns."""
        self.longest_samples: int | None = None
        """The longest delay taken so far."""
        self.moves = 0
        """How often a delay was taken that differs from the one before by more than `AGREE_SAMPLES`."""
        self.estimates = 0
        self.lost = False
        """`forget` was called and no delay was taken since: the delay found before no longer holds."""

    def forget(self, at_sample: int, *, new_path: bool = False) -> None:
        """The echo path moved around `at_sample` (an xrun): the delay is unknown until windows after it agree.
        `new_path`: the stream was reopened at another latency, so the path's own latency and the longest delay
        seen are forgotten too (judging the echo at the old latency as well would hide the user behind it)."""
        self._counts_from = max(self._counts_from, at_sample + WINDOW_SAMPLES)
        self._previous = None
        self.delay_samples = None
        self.lost = True
        if new_path:
            self.shortest_samples = None
            self.longest_samples = None

    def push(self, mic: Audio, played: Audio) -> None:
        size = len(mic)
        _write_ring(self._reference, self._pushed, played)
        _write_ring(self._mic, self._pushed, mic)
        self._pushed += size
        if size and int(np.max(np.abs(played.astype(np.int32)))) > SILENT_PEAK:
            self._played_at = self._pushed
        self._since_estimate += size
        if self._since_estimate < HOP_SAMPLES or self._pushed < self._counts_from:
            return
        if self._pushed - self._played_at > MAX_DELAY_SAMPLES:
            self._since_estimate, self._previous = 0, None  # no echo of anything played can be in the window
            return
        self._since_estimate = 0
        self._estimate()

    def _estimate(self) -> None:
        reference, mic = _unroll(self._reference, self._pushed), _unroll(self._mic, self._pushed)
        if _rms(mic) < ACTIVE_RMS or _rms(reference[-WINDOW_SAMPLES - MAX_DELAY_SAMPLES // 2 :]) < ACTIVE_RMS:
            self._previous = None  # nothing to hear, or nothing played lately: the next two must agree afresh
            return
        self.estimates += 1
        cross = np.fft.rfft(reference, self._fft) * np.conj(np.fft.rfft(mic * self._taper, self._fft))
        magnitude = np.abs(cross)
        phase = np.divide(cross, magnitude, out=np.zeros_like(cross), where=magnitude > 1e-9)
        # correlation[k] = sum_i mic[i] * reference[i + k]; the mic's window starts MAX_DELAY after the
        # reference's, so lag k is a delay of MAX_DELAY - k.
        correlation = np.fft.irfft(phase, self._fft)[: MAX_DELAY_SAMPLES + 1]
        best = int(np.argmax(correlation))
        delay, peak = MAX_DELAY_SAMPLES - best, float(correlation[best])
        previous, self._previous = self._previous, (delay, peak)
        agreed = (
            previous is not None and abs(previous[0] - delay) <= AGREE_SAMPLES and min(previous[1], peak) >= MIN_PEAK
        )
        if agreed or peak >= SURE_PEAK:
            self._take(delay)

    def _take(self, delay: int) -> None:
        if self._last_taken is not None and abs(delay - self._last_taken) > AGREE_SAMPLES:
            self.moves += 1
        self.delay_samples = self._last_taken = delay
        self.shortest_samples = delay if self.shortest_samples is None else min(self.shortest_samples, delay)
        self.longest_samples = delay if self.longest_samples is None else max(self.longest_samples, delay)
        self.lost = False


def _write_ring(ring: Floats, at: int, samples: Audio) -> None:
    """Write `samples` as ring samples `at`, `at + 1`, ... (each at its index modulo the ring's length)."""
    start = at % len(ring)
    head = min(len(samples), len(ring) - start)
    ring[start : start + head] = samples[:head]
    ring[: len(samples) - head] = samples[head:]


def _unroll(ring: Floats, end: int) -> Floats:
    """The ring in time order, oldest first, when sample `end - 1` is the newest."""
    start = end % len(ring)
    return np.concatenate((ring[start:], ring[:start]))


def _rms(samples: Floats) -> float:
    return float(np.sqrt(np.mean(samples * samples)))
