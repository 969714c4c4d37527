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
last `MAX_ECHO_DELAY_MS` (the echo lags the reference by up to AEC3's 500 ms), (c) the caller says the near end
is quiet (under double talk the user's voice rightly passes through, and counting it would read as a collapse of
the canceller), and (d) the microphone is above `mic_floor_dbfs` (near silence the ratio measures noise, not
cancellation). On counted frames the two energies are smoothed separately and `erle_db` is the ratio of the
smoothed energies: loud frames weigh more, as in an ERLE measured over a stretch of audio, and one frame of
digital silence in the output cannot make it infinite.

Echo coherence. A high ERLE alone does not prove cancellation: AEC3's suppressor cannot tell a wrong reference
from a right one, and measured with unrelated speech as the reference it often muted the microphone by 20-45 dB
(an excellent-looking ERLE) and the user's voice with it (by 13 dB). So convergence also needs evidence that the
reference explains the microphone: `echo_coherence`, the peak of the phase-transform generalised
cross-correlation (GCC-PHAT) between the microphone and the reference over lags 0-500 ms, averaged over 0.5 s
blocks. It is about 0.2-0.6 for a real echo (found at its exact delay, `echo_delay_ms`) and at most ~0.06 for
unrelated speech or for a reference that arrives after its echo (which no canceller can use).

Convergence. `converged` turns True once `erle_db` has stayed at or above `converge_erle_db` for
`converge_frames` counted frames in a row while `echo_coherence` is at least `CONVERGE_COHERENCE`. It turns
False again only after `diverge_frames` counted frames in a row below `diverge_erle_db` (an echo path change,
e.g. the device moved), or when the coherence falls below `DIVERGE_COHERENCE` (the reference stopped matching).
The gaps between the thresholds and the longer divergence time keep it from flapping on a hard word. Frames that
do not count leave the runs as they are.

Determinism (measured with livekit 1.2.1 on x86-64): instances fed the same samples give bit-identical output
and estimates, in one process (also interleaved, and whatever the period length) and across processes, so the
virtual-clock demo stays byte-identical. AEC3 computes in float with SIMD paths chosen per CPU, so another
architecture (aarch64) may give other, equally repeatable, samples: golden files must not hold cleaned audio.

Measured here (x86-64, espeak-ng speech, simulated room at -6 dB echo, RT60 0.3 s, noise -60 dBFS): ERLE about
35 dB for delays of 20-500 ms; `converged` about 3.9 s after the assistant starts speaking, nearly all of it the
initial state; ~75 us per 10 ms frame for both APM calls, most of it livekit's FFI round trips, and ~110-125 us
for all of `process` (the coherence's FFTs make one frame in 50 cost ~0.7 ms). Under double talk AEC3
attenuates the user's voice by about 7 dB while an echo 5 dB louder than the user plays. Create the canceller
once, in the thread and process that uses it (no fork), and keep it: a new one starts in the initial state again.
"""

from __future__ import annotations

import math
import time

import numpy as np
import numpy.typing as npt
from livekit import rtc

from device.rates import SPINE_RATE_HZ as RATE_HZ

Audio = npt.NDArray[np.int16]
Samples = npt.NDArray[np.float64]

FRAME_SAMPLES = 160
"""10 ms at 16 kHz: the APM processes exactly 10 ms frames on both paths."""

OUTPUT_DELAY_SAMPLES = 128
"""Measured: the cleaned signal lags the microphone by 8 ms at 16 kHz (cross-correlation peak, with or without a
reference, any period length). Whoever aligns cleaned audio with the simulation's ground truth must add it."""

_FULL_SCALE = 32768.0
_FRAME_MS = 1000.0 * FRAME_SAMPLES / RATE_HZ

MAX_ECHO_DELAY_MS = 500.0
"""How long after the reference was last active its echo may still be in the microphone: AEC3's delay range."""

REFERENCE_ACTIVE_DBFS = -50.0
"""RMS level above which a reference frame counts as playing: AEC3's own "active render" level (RMS 100 in int16
units). TTS speech is around -20 dBFS and its pauses are digital silence, so the exact value hardly matters."""

AEC3_INITIAL_STATE_S = 3.0
"""Seconds of active reference before any frame counts towards the ERLE. For its first 2.5 s of active render
AEC3 is in an "initial state": its suppressor assumes a strong echo path before the linear filter has learnt the
real one. Measured with an unrelated reference, the microphone came out 20-33 dB quieter during those 2.5 s, so
an ERLE read then says nothing about cancellation. Half a second of margin covers the difference between AEC3's
activity measure (4 ms blocks) and ours."""

ERLE_TIME_CONSTANT_S = 0.5
"""Smoothing of the ERLE energies, in seconds of counted frames: long enough to average over a few syllables,
short enough that `converged` reacts within a second."""

COHERENCE_BLOCK_MS = 500.0
"""Microphone block correlated with the reference (this block plus the `MAX_ECHO_DELAY_MS` before it) at once.
Longer than the largest delay, so every lag sees a whole block; short enough to update twice a second."""

COHERENCE_KEEP = 0.85
"""Weight of the previous average when a block's correlation is added: about 3 s of memory. Chance peaks of
unrelated speech fall at other lags block after block and average away; a true echo's stays at its delay."""

COHERENCE_MIN_BLOCKS = 2
"""Blocks counted before `echo_coherence` is trusted: a single block is too little to average anything."""

CONVERGE_COHERENCE = 0.12
"""`echo_coherence` needed to converge. Measured over rooms with 20-500 ms delay, RT60 0.3-0.8 s, echo -30 to
0 dB and 12 unrelated espeak-ng references: the true reference gave at least 0.18 once the ERLE could count
(0.25-0.6 later), unrelated speech at most 0.06, a reference arriving 200 ms after its echo at most 0.04."""

PATH_CHANGE_COHERENCE = 0.15
"""A single block whose correlation peaks at least this high is a confident sighting of the echo (a true echo
gives 0.2-0.6 per block, unrelated speech under 0.1)."""

PATH_CHANGE_SAMPLES = 32
"""A confident block whose lag is more than this (2 ms) from the averaged lag means the echo path moved (an xrun
drops or repeats a period: 10 ms; clock drift gets there after tens of seconds): the average restarts from that
block, and a converged canceller counts as diverged until its ERLE proves it again. Measured by the 3 s average
alone, a 10 ms jump took seconds to show; this sees it in one 0.5 s block."""

DIVERGE_COHERENCE = 0.08
"""`echo_coherence` below which a converged canceller counts as diverged: the reference no longer explains the
microphone. Above what unrelated speech reaches, well below a working echo path."""

_CLEANED_ENERGY_FLOOR = 1.0
"""Mean square of one LSB: AEC3's suppressor may output digital silence, and the ratio must stay finite."""


def _mean_square(frames: npt.NDArray[np.int16]) -> npt.NDArray[np.float64]:
    """Mean square per row of `frames` (frame count x FRAME_SAMPLES), in int16 units squared."""
    as_float = frames.astype(np.float64)
    return np.asarray(np.mean(as_float * as_float, axis=1), dtype=np.float64)


def _energy_of_dbfs(level_dbfs: float) -> float:
    return _FULL_SCALE * _FULL_SCALE * math.pow(10.0, level_dbfs / 10.0)


class _EchoCoherence:
    """GCC-PHAT between microphone blocks and the reference before them, averaged over blocks.

    The phase transform divides the cross-spectrum by its magnitude, so every frequency bin votes equally and the
    correlation over lags has unit energy: its peak is the share of the microphone that is the reference delayed
    by one lag, whatever the levels. Unrelated speech spreads its votes over all lags; an echo stacks them at its
    delay (the direct path; reverberation lowers the peak but does not move it).
    """

    def __init__(self, block_samples: int, max_lag_samples: int) -> None:
        self._block_samples = block_samples
        self._max_lag_samples = max_lag_samples
        window_samples = block_samples + max_lag_samples
        self._fft_samples = 1 << (window_samples - 1).bit_length()  # no circular wrap-around within the lags
        # Lag L (mic[n] ~ reference[n - L]) sits at index L - max_lag of the circular cross-correlation.
        self._lag_indices = (np.arange(max_lag_samples + 1) - max_lag_samples) % self._fft_samples
        # Both lengths are whole numbers of frames (8,000 samples each), so a frame never straddles a boundary.
        self._reference: Samples = np.zeros(window_samples)  # a ring: the newest sample just before `_write`
        self._write = 0
        self._mic: Samples = np.zeros(block_samples)
        self._filled_samples = 0
        self._block_counts = True
        self._average: Samples | None = None
        self.blocks = 0
        self.value = 0.0
        self.lag_samples = 0
        self.path_changes = 0
        """Blocks whose confident lag moved away from the average (see `PATH_CHANGE_SAMPLES`)."""

    def push(self, mic: Audio, reference: Audio, counts: bool) -> None:
        """One frame of each; `counts` is False when the frame must not contribute (double talk, no reference)."""
        size = reference.size
        self._reference[self._write : self._write + size] = reference
        self._write = (self._write + size) % self._reference.size
        self._mic[self._filled_samples : self._filled_samples + size] = mic
        self._filled_samples += size
        self._block_counts = self._block_counts and counts
        if self._filled_samples == self._block_samples:
            if self._block_counts:
                self._add_block()
            self._filled_samples = 0
            self._block_counts = True

    def _add_block(self) -> None:
        reference = np.concatenate((self._reference[self._write :], self._reference[: self._write]))
        cross = np.fft.rfft(self._mic, self._fft_samples) * np.conj(np.fft.rfft(reference, self._fft_samples))
        magnitude = np.abs(cross)
        # Silent bins (a digitally silent reference) have no phase to vote with: they stay zero.
        phase = np.divide(cross, magnitude, out=np.zeros_like(cross), where=magnitude > 1e-9)
        correlation = np.fft.irfft(phase, self._fft_samples)[self._lag_indices]
        block_lag = int(np.argmax(correlation))
        moved = (
            self._average is not None
            and self.blocks >= COHERENCE_MIN_BLOCKS
            and correlation[block_lag] >= PATH_CHANGE_COHERENCE
            and abs(block_lag - self.lag_samples) > PATH_CHANGE_SAMPLES
        )
        if self._average is None or moved:
            self.path_changes += int(moved)
            self._average = correlation
        else:
            self._average = COHERENCE_KEEP * self._average + (1.0 - COHERENCE_KEEP) * correlation
        self.blocks += 1
        self.lag_samples = int(np.argmax(self._average))
        self.value = float(self._average[self.lag_samples])


class EchoCanceller:
    """`process(mic, reference)` returns the microphone with the echo of `reference` removed; see the module doc.

    Read-only state: `erle_db`; `echo_coherence`; `echo_delay_ms`; `converged`; `converged_at_frame`, the value of
    `frames_processed` when it first became True (None before); `frames_processed`, 10 ms frames since the last
    reset; `apm_seconds`, time spent in the APM calls; `cost_per_frame_us`.
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
            well below the user's voice; a canceller without a usable reference gives 0-5 dB.
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
        self._echo_memory_frames = round(MAX_ECHO_DELAY_MS / _FRAME_MS)
        self._initial_state_frames = round(1000.0 * AEC3_INITIAL_STATE_S / _FRAME_MS)
        self._smoothing = 1.0 - math.exp(-_FRAME_MS / (1000.0 * ERLE_TIME_CONSTANT_S))
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
        self._frames_since_reference = self._echo_memory_frames + 1
        self._active_reference_frames = 0
        self._mic_energy: float | None = None
        self._cleaned_energy = 0.0
        self._above_run_frames = 0
        self._below_run_frames = 0
        self._path_changes_seen = 0
        self._coherence = _EchoCoherence(
            round(COHERENCE_BLOCK_MS * RATE_HZ / 1000.0), round(MAX_ECHO_DELAY_MS * RATE_HZ / 1000.0)
        )

    @property
    def erle_db(self) -> float:
        """Smoothed ERLE over counted frames, dB; 0.0 before any frame counted (no evidence of cancellation)."""
        if self._mic_energy is None:
            return 0.0
        return 10.0 * math.log10(self._mic_energy / self._cleaned_energy)

    @property
    def echo_coherence(self) -> float:
        """How much of the microphone is the reference at the best lag (GCC-PHAT peak); 0.0 until trusted."""
        return self._coherence.value if self._coherence.blocks >= COHERENCE_MIN_BLOCKS else 0.0

    @property
    def path_changes(self) -> int:
        """How often the echo path was seen to move (a delay jump), since the last reset."""
        return self._coherence.path_changes

    @property
    def echo_delay_ms(self) -> float | None:
        """The lag of that peak, ms: the echo's delay after the reference (if coherent); None until trusted."""
        if self._coherence.blocks < COHERENCE_MIN_BLOCKS:
            return None
        return 1000.0 * self._coherence.lag_samples / RATE_HZ

    @property
    def cost_per_frame_us(self) -> float:
        """Mean time inside the two APM calls per 10 ms frame, microseconds; 0.0 before any frame."""
        return 1e6 * self.apm_seconds / self.frames_processed if self.frames_processed else 0.0

    def process(self, mic: Audio, reference: Audio, *, near_end_quiet: bool = True) -> Audio:
        """The cleaned `mic`: one period of int16 samples, a positive whole multiple of `FRAME_SAMPLES`.

        `reference` holds what the speaker played during that same period (same length; zeros when silent).
        `near_end_quiet=False` while the caller believes the user speaks: those frames update no estimate.
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
            frame = slice(start, start + FRAME_SAMPLES)
            cleaned[frame] = self._process_frame(mic[frame], reference[frame])
            echo_possible = self._note_reference(float(reference_energies[index]))
            counts = echo_possible and near_end_quiet  # else no echo to measure, or the user's voice would count
            self._coherence.push(mic[frame], reference[frame], counts)
            if counts:
                cleaned_energy = float(_mean_square(cleaned[frame].reshape(frame_shape))[0])
                self._track(float(mic_energies[index]), cleaned_energy)
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

    def _note_reference(self, reference_energy: float) -> bool:
        """Whether the microphone can hold echo now: the reference was active within the largest echo delay."""
        if reference_energy >= self._reference_active_energy:
            self._frames_since_reference = 0
            self._active_reference_frames += 1
        else:
            self._frames_since_reference += 1
        return self._frames_since_reference <= self._echo_memory_frames

    def _track(self, mic_energy: float, cleaned_energy: float) -> None:
        """Update the ERLE and the convergence decision with a frame in which the mic can hold only echo."""
        if self._active_reference_frames < self._initial_state_frames or mic_energy < self._mic_floor_energy:
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
        coherence = self.echo_coherence
        if self._coherence.path_changes != self._path_changes_seen:
            # The echo moved: whatever the ERLE says, the filter was learnt for the old path.
            self._path_changes_seen = self._coherence.path_changes
            self.converged = False
            self._above_run_frames = 0
            return
        if not self.converged:
            if self._above_run_frames >= self.converge_frames and coherence >= CONVERGE_COHERENCE:
                self.converged = True
                if self.converged_at_frame is None:
                    self.converged_at_frame = self.frames_processed
        elif self._below_run_frames >= self.diverge_frames or coherence < DIVERGE_COHERENCE:
            self.converged = False
