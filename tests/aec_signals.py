"""Signals and a driver the echo canceller's tests share: espeak-ng speech played through the simulated room's echo
path, and a canceller run over it period by period."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from device.engines.aec import FRAME_SAMPLES, EchoCanceller
from device.rates import SPINE_RATE_HZ
from device.sim import room
from device.sim.room import to_int16 as to_int16  # shared with the bench (device/sim/room.py)
from device.sim.scene import RoomSpec
from device.sim.speech import synthesize

Audio = npt.NDArray[np.int16]
Signal = npt.NDArray[np.float32]

# About 8 s of speech: AEC3's initial state takes the first 2.5 s of it, the rest is what is measured.
ASSISTANT_TEXT = (
    "Hello, I am your assistant. The weather today is sunny with a light breeze from the west. "
    "Tomorrow it will rain in the afternoon, so take an umbrella."
)
PERIOD_SAMPLES = 2 * FRAME_SAMPLES  # 20 ms periods: several frames per call, as the audio callback delivers them


@dataclass(frozen=True)
class Run:
    """One pass of a canceller over a signal, with the estimate after every period."""

    cleaned: Audio
    erle_db: list[float]
    converged: list[bool]
    period_end_samples: list[int]


def assistant_speech() -> Audio:
    speech = synthesize(ASSISTANT_TEXT)
    return speech[: speech.size // FRAME_SAMPLES * FRAME_SAMPLES]


def room_echo(speaker: Audio, room_spec: RoomSpec) -> Signal:
    """What the microphone hears of `speaker`, plus the room's noise, streamed in frames as the card does."""
    return room.room_echo(speaker, room_spec, SPINE_RATE_HZ, FRAME_SAMPLES)


def cancel(
    canceller: EchoCanceller,
    mic: Audio,
    reference: Audio,
    near_end_quiet: npt.NDArray[np.bool_] | None = None,
    period_samples: int = PERIOD_SAMPLES,
) -> Run:
    cleaned: list[Audio] = []
    erle_db: list[float] = []
    converged: list[bool] = []
    ends: list[int] = []
    for start in range(0, mic.size, period_samples):
        end = start + period_samples
        quiet = True if near_end_quiet is None else bool(near_end_quiet[start:end].all())
        cleaned.append(canceller.process(mic[start:end], reference[start:end], near_end_quiet=quiet))
        erle_db.append(canceller.erle_db)
        converged.append(canceller.converged)
        ends.append(end)
    return Run(np.concatenate(cleaned), erle_db, converged, ends)


def echo_room(delay_ms: float) -> RoomSpec:
    """A loud echo: -6 dB, so that 20 dB of ERLE is well above the -60 dBFS noise (echo-to-noise ~32 dB)."""
    return RoomSpec(echo_delay_ms=delay_ms, echo_gain_db=-6.0, rt60_s=0.3, noise_dbfs=-60.0, seed=1)
