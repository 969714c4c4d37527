"""Stand-ins for hearing's models, and the hearing parameters, shared by the tests that drive `Hearing`.

The stand-ins are real, if simple, detectors (RMS level, peak amplitude), so a test's answer is known from its signal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from device.runtime.endpointer import EndpointerConfig
from device.runtime.hearing import Audio, HearingConfig

CHUNK = 512  # Silero's chunk
FRAME = 1280  # openWakeWord's frame

CONFIG = HearingConfig(
    wake_model="hey_jarvis",
    wake_threshold=0.5,
    wake_refractory_samples=10 * FRAME,
    own_speech_window_samples=16000,
    endpointer=EndpointerConfig(
        on_threshold=0.5,
        off_threshold=0.35,
        hint_samples=2 * CHUNK,
        start_samples=3 * CHUNK,
        end_silence_samples=4 * CHUNK,
        pause_samples=4800,
        onset_lookback_samples=8000,
    ),
    vad_reset_quiet_samples=16000,
    reference_window_samples=8000,
    user_hold_samples=4800,
)


class RmsVoice:
    """A real, if simple, VAD: voice probability from the chunk's RMS level (energy detection).

    It is not a stand-in for Silero's behaviour; it implements the same protocol so Hearing's framing and its
    wiring to the endpointer can be checked with signals whose answer is known. It keeps the chunks it saw.
    """

    CHUNK_SAMPLES = CHUNK

    def __init__(self) -> None:
        self.chunks: list[list[int]] = []

    def probability(self, chunk: np.ndarray) -> float:
        self.chunks.append(chunk.tolist())
        return min(1.0, math.sqrt(float(np.mean(chunk.astype(np.float64) ** 2))) / 4000.0)

    def reset(self) -> None:
        self.resets = getattr(self, "resets", 0) + 1


class PeakWake:
    """A real, if simple, detector: the score is the frame's peak amplitude (a loud click "wakes" it)."""

    FRAME_SAMPLES = FRAME

    def __init__(self) -> None:
        self.frames: list[list[int]] = []
        self.resets = 0

    def score(self, frame: np.ndarray) -> float:
        self.frames.append(frame.tolist())
        return min(1.0, float(np.max(np.abs(frame.astype(np.int32)))) / 20000.0)

    def reset(self) -> None:
        self.resets += 1


@dataclass
class MeasuredCanceller:
    """What hearing reads of a canceller, set by the test: its measured delay and its count of path changes."""

    echo_delay_ms: float | None = 40.0
    path_changes: int = 0
    converged: bool = True
    erle_db: float = 30.0

    def process(self, mic: Audio, reference: Audio, *, near_end_quiet: bool = True) -> Audio:
        return mic
