"""Echo cancellation with WebRTC AEC3, through livekit's `AudioProcessingModule`, and a running estimate of how well
it works.

What is fed when. The caller hands over one audio period at a time: the microphone samples and the reference,
the samples the speaker really played during that same period (all zeros when nothing plays). The period is cut
into 10 ms frames (160 samples at 16 kHz, the only size the APM accepts), and for each frame the reference goes
in with `process_reverse_stream` before the microphone frame goes in with `process_stream`: the echo of a played
sample always reaches the microphone later, so the canceller must have seen the sample by then. The remaining
delay (converters, the air, the room) is AEC3's to find: its delay estimator locks onto 20-500 ms by itself.
The output is the input delayed by `OUTPUT_DELAY_SAMPLES` (AEC3's block and filter-bank latency).

ERLE. The echo return loss enhancement is how much quieter the canceller makes the echo: microphone energy over
cleaned energy, in dB. It only means that while the microphone holds echo and nothing else, so a frame counts
only when (a) AEC3 has left its initial state (`AEC3_INITIAL_STATE_S`), (b) the reference was active within the
last `REFERENCE_MEMORY_MS` (the echo lags the reference by up to AEC3's 500 ms), (c) the caller says the near end
is quiet (under double talk the user's voice rightly passes through, and counting it would read as a collapse of
the canceller), and (d) the microphone is above `mic_floor_dbfs` (near silence the ratio measures noise, not
cancellation). On counted frames the two energies are smoothed separately and `erle_db` is the ratio of the
smoothed energies: loud frames weigh more, as in an ERLE measured over a stretch of audio, and one frame of
digital silence in the output cannot make it infinite.

Convergence. `converged` turns True once `erle_db` has stayed at or above `converge_erle_db` for
`converge_frames` counted frames in a row, and turns False again only after `diverge_frames` counted frames in a
row below `diverge_erle_db` (an echo path change, e.g. the device moved). The gap between the two thresholds and
the longer divergence time keep it from flapping on a hard word. Frames that do not count leave both runs as
they are.

Determinism (measured with livekit 1.2.1 on x86-64): instances fed the same samples give bit-identical output
and estimates, in one process (also interleaved, and whatever the period length) and across processes, so the
virtual-clock demo stays byte-identical. AEC3 computes in float with SIMD paths chosen per CPU, so another
architecture (aarch64) may give other, equally repeatable, samples: golden files must not hold cleaned audio.

Measured here (x86-64, espeak-ng speech, simulated room at -6 dB echo, RT60 0.3 s, noise -60 dBFS): ERLE about
35 dB for delays of 20-500 ms; `converged` about 3.9 s after the assistant starts speaking, nearly all of it the
initial state; ~75-120 us per 10 ms frame for both calls, most of it livekit's FFI round trips. Under double talk
AEC3 attenuates the user's voice by about 7 dB while an echo 5 dB louder than the user plays. Create the
canceller once, in the thread and process that uses it (no fork), and keep it: a new one starts in the initial
state again.
"""

from __future__ import annotations

import math
import time

import numpy as np
import numpy.typing as npt
from livekit import rtc

Audio = npt.NDArray[np.int16]

RATE_HZ = 16000
FRAME_SAMPLES = 160
"""10 ms at 16 kHz: the APM processes exactly 10 ms frames on both paths."""

OUTPUT_DELAY_SAMPLES = 128
"""Measured: the cleaned signal lags the microphone by 8 ms at 16 kHz (cross-correlation peak, with or without a
reference, any period length). Whoever aligns cleaned audio with the simulation's ground truth must add it."""

_FULL_SCALE = 32768.0
_FRAME_MS = 1000.0 * FRAME_SAMPLES / RATE_HZ

REFERENCE_MEMORY_MS = 500.0
"""How long after the reference was last active its echo may still be in the microphone: AEC3's delay range."""

REFERENCE_ACTIVE_DBFS = -50.0
"""RMS level above which a reference frame counts as playing: AEC3's own "active render" level (RMS 100 in int16
units). TTS speech is around -20 dBFS and its pauses are digital silence, so the exact value hardly matters."""

AEC3_INITIAL_STATE_S = 3.0
"""Seconds of active reference before any frame counts towards the ERLE. For its first 2.5 s of active render
AEC3 is in an "initial state": its suppressor assumes a strong echo path before the linear filter has learnt the
real one. Measured with an unrelated reference (nothing cancellable), the microphone came out 20-33 dB quieter
during those 2.5 s and 0-2 dB after. So an ERLE read then says nothing about cancellation, and counting it would
declare convergence for a reference that cannot cancel anything. Half a second of margin covers the difference
between AEC3's activity measure (4 ms blocks) and ours."""

ERLE_TIME_CONSTANT_S = 0.5
"""Smoothing of the ERLE energies, in seconds of counted frames: long enough to average over a few syllables,
short enough that `converged` reacts within a second."""

ECHO_MATCH_TIME_CONSTANT_S = 1.5
"""Smoothing of the level correlation behind `echo_match`, in seconds of counted frames. Measured over the
simulated rooms (20-500 ms, RT60 0.3-0.8 s, echo -30 to 0 dB): the true reference reached 0.73-0.95 over 2 s
windows while unrelated speech reached up to 0.56 at its best lag; longer windows separate them further, but
convergence would wait longer."""

ECHO_MATCH_MIN_S = 2.0
"""Counted seconds before `echo_match` is trusted: early correlations over a few syllables are chance."""

CONVERGE_ECHO_MATCH = 0.65
"""`echo_match` needed to converge: between unrelated speech (at most ~0.56) and the true echo (at least ~0.7)."""

DIVERGE_ECHO_MATCH = 0.45
"""`echo_match` below which a converged canceller counts as diverged: the reference no longer explains the mic."""

LEVEL_FLOOR_DBFS = -70.0
"""Floor of the frame levels the match correlates: the reference's pauses are digital silence (-inf dB), and
levels under a quiet room's noise carry no shape."""

_CLEANED_ENERGY_FLOOR = 1.0
"""Mean square of one LSB: AEC3's suppressor may output digital silence, and the ratio must stay finite."""


def _mean_square(frames: npt.NDArray[np.int16]) -> npt.NDArray[np.float64]:
    """Mean square per row of `frames` (frame count x FRAME_SAMPLES), in int16 units squared."""
    as_float = frames.astype(np.float64)
    return np.asarray(np.mean(as_float * as_float, axis=1), dtype=np.float64)


def _energy_of_dbfs(level_dbfs: float) -> float:
    return _FULL_SCALE * _FULL_SCALE * math.pow(10.0, level_dbfs / 10.0)


_LEVEL_FLOOR_ENERGY = _energy_of_dbfs(LEVEL_FLOOR_DBFS)


def _level_db(energy: float) -> float:
    """A frame's level for the match, dB (of int16 units squared), floored at `LEVEL_FLOOR_DBFS`."""
    return 10.0 * math.log10(energy + _LEVEL_FLOOR_ENERGY)


class _EchoMatch:
    """How well the microphone's level follows the reference's level at the best lag within the echo delay range.

    AEC3's suppressor cannot tell a wrong reference from a right one: measured with unrelated speech as the
    reference, it often muted the microphone by 20-45 dB (ERLE looks excellent) and the user's voice with it (by
    13 dB). So convergence also needs evidence that the reference explains the microphone: the Pearson
    correlation, exponentially weighted, between the microphone's frame level and the reference's frame level
    `lag` frames earlier, for every lag from 0 to the largest echo delay. Levels rather than samples: they are
    robust to the room's filtering and the loudspeaker's distortion, and cost one value per 10 ms frame.
    """

    def __init__(self, max_lag_frames: int, time_constant_frames: float) -> None:
        self._smoothing = 1.0 - math.exp(-1.0 / time_constant_frames)
        lags = max_lag_frames + 1
        self._references_db = np.full(lags, _level_db(0.0))  # newest first: the index is the lag in frames
        # Exponentially weighted sums, divided by their total weight when read: unbiased from the first frame on,
        # instead of leaning towards an arbitrary starting value for the first few time constants.
        self._weight = 0.0
        self._sum_reference = np.zeros(lags)
        self._sum_square_reference = np.zeros(lags)
        self._sum_product = np.zeros(lags)
        self._sum_mic = 0.0
        self._sum_square_mic = 0.0
        self.counted_frames = 0
        self.value = 0.0
        self.lag_frames = 0

    def push_reference(self, energy: float) -> None:
        """Every frame, counted or not: the history must stay aligned with time."""
        self._references_db[1:] = self._references_db[:-1]
        self._references_db[0] = _level_db(energy)

    def update(self, mic_energy: float) -> None:
        """Add a frame in which the microphone can hold echo and nothing else."""
        mic_db = _level_db(mic_energy)
        references_db = self._references_db
        keep = 1.0 - self._smoothing
        self._weight = keep * self._weight + self._smoothing
        self._sum_reference = keep * self._sum_reference + self._smoothing * references_db
        self._sum_square_reference = keep * self._sum_square_reference + self._smoothing * references_db**2
        self._sum_product = keep * self._sum_product + self._smoothing * references_db * mic_db
        self._sum_mic = keep * self._sum_mic + self._smoothing * mic_db
        self._sum_square_mic = keep * self._sum_square_mic + self._smoothing * mic_db * mic_db
        self.counted_frames += 1
        mean_reference = self._sum_reference / self._weight
        mean_mic = self._sum_mic / self._weight
        covariance = self._sum_product / self._weight - mean_reference * mean_mic
        variance_reference = self._sum_square_reference / self._weight - mean_reference**2
        variance_mic = self._sum_square_mic / self._weight - mean_mic * mean_mic
        variance = np.maximum(variance_reference * variance_mic, 0.0)
        # A flat level (silence, a steady tone) has no shape to match: zero rather than a division by ~0.
        correlation = np.where(variance > 1e-6, covariance / np.sqrt(np.maximum(variance, 1e-6)), 0.0)
        self.lag_frames = int(np.argmax(correlation))
        self.value = float(correlation[self.lag_frames])


class EchoCanceller:
    """`process(mic, reference)` returns the microphone with the echo of `reference` removed; see the module doc.

    Read-only state: `erle_db`; `converged`; `converged_at_frame`, the value of `frames_processed` when it first
    became True (None before); `frames_processed`, 10 ms frames since the last reset; `apm_seconds`, time spent in
    the APM calls; `cost_per_frame_us`.
    """

    def __init__(
        self,
        *,
        converge_erle_db: float = 10.0,
        converge_frames: int = 30,
        diverge_erle_db: float = 4.0,
        diverge_frames: int = 100,
        mic_floor_dbfs: float = -50.0,
    ) -> None:
        """Thresholds of the convergence decision.

        converge_erle_db: ERLE at which the canceller counts as working, dB. 10 dB already takes a loud echo
            well below the user's voice; an unconverged AEC3 gives 0-5 dB (its suppressor guesses early on).
        converge_frames: counted 10 ms frames the ERLE must stay at or above it (30: 300 ms, a couple of words).
        diverge_erle_db: ERLE below which the echo path counts as changed, dB (4: well under any working state).
        diverge_frames: counted 10 ms frames it must stay below that (100: 1 s, longer than one hard word).
        mic_floor_dbfs: RMS level below which a microphone frame does not count towards the ERLE, dBFS. -50 is
            10 dB above a quiet room's noise (about -60 dBFS): the measurable ERLE is capped by the echo-to-noise
            ratio, so a floor too close to the noise would keep a quiet echo from ever counting as converged.
        """
        if converge_frames < 1 or diverge_frames < 1:
            raise ValueError(f"frame counts must be positive, got {converge_frames} and {diverge_frames}")
        if diverge_erle_db > converge_erle_db:
            raise ValueError(
                f"diverge_erle_db ({diverge_erle_db}) must not exceed converge_erle_db ({converge_erle_db})"
            )
        self.converge_erle_db = converge_erle_db
        self.converge_frames = converge_frames
        self.diverge_erle_db = diverge_erle_db
        self.diverge_frames = diverge_frames
        self._mic_floor_energy = _energy_of_dbfs(mic_floor_dbfs)
        self._reference_active_energy = _energy_of_dbfs(REFERENCE_ACTIVE_DBFS)
        self._reference_memory_frames = round(REFERENCE_MEMORY_MS / _FRAME_MS)
        self._initial_state_frames = round(1000.0 * AEC3_INITIAL_STATE_S / _FRAME_MS)
        self._smoothing = 1.0 - math.exp(-_FRAME_MS / (1000.0 * ERLE_TIME_CONSTANT_S))
        self._match_min_frames = round(1000.0 * ECHO_MATCH_MIN_S / _FRAME_MS)
        self.reset()

    def reset(self) -> None:
        """Forget everything: a new APM (its filters relearn the echo path), estimates and counters from zero.

        For a changed audio device, where the old echo path is wrong and waiting for divergence would cost a second.
        """
        # Noise suppression off: the ASR and VAD are trained on unsuppressed audio and the user's voice matters more
        # than a cleaner silence. AGC off: a gain that moves with the echo would corrupt the ERLE estimate.
        # High-pass filter on, but only to say what runs: with echo cancellation on, AEC3 enforces its own
        # high-pass filter, and the output was measured bit-identical with the flag on or off (a DC offset and a
        # 30 Hz hum are removed either way).
        # No `set_stream_delay_ms`: measured at 20-500 ms delays, a correct hint changed the steady-state ERLE by
        # under 0.2 dB and only sped up the first lock at 500 ms (by ~0.2 s), while a wrong hint (300 ms for a
        # 20 or 150 ms echo) delayed the first lock by 0.2-0.4 s. The true delay depends on the sound card, so
        # AEC3's own estimator is the better source.
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=True, noise_suppression=False, high_pass_filter=True, auto_gain_control=False
        )
        self.frames_processed = 0
        self.apm_seconds = 0.0
        self.converged = False
        self.converged_at_frame: int | None = None
        self._frames_since_reference = self._reference_memory_frames + 1
        self._active_reference_frames = 0
        self._mic_energy: float | None = None
        self._cleaned_energy = 0.0
        self._above_run_frames = 0
        self._below_run_frames = 0
        self._match = _EchoMatch(self._reference_memory_frames, 1000.0 * ECHO_MATCH_TIME_CONSTANT_S / _FRAME_MS)

    @property
    def erle_db(self) -> float:
        """Smoothed ERLE over counted frames, dB; 0.0 before any frame counted (no evidence of cancellation)."""
        if self._mic_energy is None:
            return 0.0
        return 10.0 * math.log10(self._mic_energy / self._cleaned_energy)

    @property
    def echo_match(self) -> float:
        """Correlation of the microphone's level with the reference's at the best lag (-1..1); 0.0 until trusted."""
        return self._match.value if self._match.counted_frames >= self._match_min_frames else 0.0

    @property
    def echo_delay_ms(self) -> float | None:
        """The lag of the best level match, ms (a 10 ms grid): the echo's delay; None until the match is trusted."""
        return self._match.lag_frames * _FRAME_MS if self._match.counted_frames >= self._match_min_frames else None

    @property
    def cost_per_frame_us(self) -> float:
        """Mean time inside the two APM calls per 10 ms frame, microseconds; 0.0 before any frame."""
        return 1e6 * self.apm_seconds / self.frames_processed if self.frames_processed else 0.0

    def process(self, mic: Audio, reference: Audio, *, near_end_quiet: bool = True) -> Audio:
        """The cleaned `mic`: one period of int16 samples, a positive whole multiple of `FRAME_SAMPLES`.

        `reference` holds what the speaker played during that same period (same length; zeros when silent).
        `near_end_quiet=False` while the caller believes the user speaks: those frames do not update `erle_db`.
        """
        if mic.dtype != np.int16 or reference.dtype != np.int16 or mic.ndim != 1 or reference.ndim != 1:
            raise ValueError(
                f"mic and reference must be 1-D int16 arrays, got {mic.dtype} {mic.shape} and "
                f"{reference.dtype} {reference.shape}"
            )
        if mic.size != reference.size:
            raise ValueError(f"mic has {mic.size} samples but reference has {reference.size}: they must be equal")
        if mic.size == 0 or mic.size % FRAME_SAMPLES:
            raise ValueError(
                f"a period must be a positive whole multiple of {FRAME_SAMPLES} samples (10 ms at {RATE_HZ} Hz), "
                f"got {mic.size}"
            )
        frame_shape = (-1, FRAME_SAMPLES)
        mic_energies = _mean_square(mic.reshape(frame_shape))
        reference_energies = _mean_square(reference.reshape(frame_shape))
        cleaned = np.empty_like(mic)
        for index, start in enumerate(range(0, mic.size, FRAME_SAMPLES)):
            end = start + FRAME_SAMPLES
            cleaned[start:end] = self._process_frame(mic[start:end], reference[start:end])
            cleaned_energy = float(_mean_square(cleaned[start:end].reshape(frame_shape))[0])
            self._track(float(mic_energies[index]), float(reference_energies[index]), cleaned_energy, near_end_quiet)
        return cleaned

    def _process_frame(self, mic: Audio, reference: Audio) -> Audio:
        # Copies: the APM works in place, and the caller's arrays stay untouched.
        reference_frame = rtc.AudioFrame(bytearray(reference.tobytes()), RATE_HZ, 1, FRAME_SAMPLES)
        mic_frame = rtc.AudioFrame(bytearray(mic.tobytes()), RATE_HZ, 1, FRAME_SAMPLES)
        # The clock only measures cost; nothing it reads reaches the output or the estimates.
        started_s = time.perf_counter()
        self._apm.process_reverse_stream(reference_frame)
        self._apm.process_stream(mic_frame)
        self.apm_seconds += time.perf_counter() - started_s
        self.frames_processed += 1
        return np.frombuffer(mic_frame.data, dtype=np.int16)

    def _track(self, mic_energy: float, reference_energy: float, cleaned_energy: float, near_end_quiet: bool) -> None:
        """Update the ERLE estimate and the convergence runs with one frame's mean squares."""
        self._match.push_reference(reference_energy)
        if reference_energy >= self._reference_active_energy:
            self._frames_since_reference = 0
            self._active_reference_frames += 1
        else:
            self._frames_since_reference += 1
        if not (near_end_quiet and self._frames_since_reference <= self._reference_memory_frames):
            return  # no echo possible, or the user's voice would be counted as echo
        # The match counts quiet microphone frames too: that the mic is quiet while the reference is, is evidence.
        self._match.update(mic_energy)
        past_initial_state = self._active_reference_frames >= self._initial_state_frames
        if not (past_initial_state and mic_energy >= self._mic_floor_energy):
            return
        cleaned_energy = max(cleaned_energy, _CLEANED_ENERGY_FLOOR)
        if self._mic_energy is None:
            # Start from the first counted frame rather than from zero, which would bias the first second.
            self._mic_energy, self._cleaned_energy = mic_energy, cleaned_energy
        else:
            self._mic_energy += self._smoothing * (mic_energy - self._mic_energy)
            self._cleaned_energy += self._smoothing * (cleaned_energy - self._cleaned_energy)
        erle_db = self.erle_db
        self._above_run_frames = self._above_run_frames + 1 if erle_db >= self.converge_erle_db else 0
        self._below_run_frames = self._below_run_frames + 1 if erle_db < self.diverge_erle_db else 0
        echo_match = self.echo_match
        if not self.converged:
            if self._above_run_frames >= self.converge_frames and echo_match >= CONVERGE_ECHO_MATCH:
                self.converged = True
                if self.converged_at_frame is None:
                    self.converged_at_frame = self.frames_processed
        elif self._below_run_frames >= self.diverge_frames or echo_match < DIVERGE_ECHO_MATCH:
            self.converged = False
