"""The echo canceller's contract: wrong lengths, types and thresholds raise; the output lags the input by the
documented delay; reset starts over; identical input gives identical output, in one process and across processes.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device.engines.aec import FRAME_SAMPLES, OUTPUT_DELAY_SAMPLES, EchoCanceller
from device.rates import SPINE_RATE_HZ
from tests.aec_signals import PERIOD_SAMPLES, Audio, assistant_speech, cancel, echo_room, room_echo, to_int16

_REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("mic_samples", "reference_samples"),
    [(159, 159), (161, 161), (0, 0), (320, 160), (160, 320)],
)
def test_wrong_lengths_raise(mic_samples: int, reference_samples: int) -> None:
    canceller = EchoCanceller()
    with pytest.raises(ValueError, match="samples"):
        canceller.process(np.zeros(mic_samples, dtype=np.int16), np.zeros(reference_samples, dtype=np.int16))
    assert canceller.frames_processed == 0


def test_wrong_types_and_thresholds_raise() -> None:
    canceller = EchoCanceller()
    with pytest.raises(ValueError, match="int16"):
        canceller.process(np.zeros(160, dtype=np.float32), np.zeros(160, dtype=np.float32))
    with pytest.raises(ValueError, match="1-D"):
        canceller.process(np.zeros((2, 160), dtype=np.int16), np.zeros((2, 160), dtype=np.int16))
    with pytest.raises(ValueError, match="diverge_erle_db"):
        EchoCanceller(converge_erle_db=5.0, diverge_erle_db=6.0)
    with pytest.raises(ValueError, match="positive"):
        EchoCanceller(converge_frames=0)


def test_the_output_lags_the_input_by_the_documented_delay() -> None:
    noise = (np.random.default_rng(0).standard_normal(SPINE_RATE_HZ) * 3000.0).astype(np.int16)
    cleaned = cancel(EchoCanceller(), noise, np.zeros_like(noise)).cleaned
    start, stop = 2000, 14000
    window = cleaned[start:stop].astype(np.float64)
    scores = [abs(float(np.dot(window, noise[start - lag : stop - lag]))) for lag in range(300)]
    assert int(np.argmax(scores)) == OUTPUT_DELAY_SAMPLES


def test_reset_starts_over() -> None:
    reference = assistant_speech()
    mic = to_int16(room_echo(reference, echo_room(20.0)))
    canceller = EchoCanceller()
    cancel(canceller, mic, reference)
    assert canceller.converged

    canceller.reset()

    assert (canceller.converged, canceller.converged_at_frame, canceller.erle_db) == (False, None, 0.0)
    assert (canceller.frames_processed, canceller.cost_per_frame_us) == (0, 0.0)
    assert np.array_equal(cancel(canceller, mic, reference).cleaned, cancel(EchoCanceller(), mic, reference).cleaned)


def _determinism_input() -> tuple[Audio, Audio]:
    reference = assistant_speech()[: 5 * SPINE_RATE_HZ]
    return to_int16(room_echo(reference, echo_room(150.0))), reference


def test_identical_input_gives_identical_output() -> None:
    mic, reference = _determinism_input()
    first, second = EchoCanceller(), EchoCanceller()
    first_out: list[Audio] = []
    second_out: list[Audio] = []
    # Interleaved, so any state shared between instances (in livekit's FFI server) would show.
    for start in range(0, mic.size, PERIOD_SAMPLES):
        end = start + PERIOD_SAMPLES
        first_out.append(first.process(mic[start:end], reference[start:end]))
        second_out.append(second.process(mic[start:end], reference[start:end]))
        assert (first.erle_db, first.echo_coherence) == (second.erle_db, second.echo_coherence)
    assert np.array_equal(np.concatenate(first_out), np.concatenate(second_out))
    # The period length does not matter either: only 10 ms frames reach the APM.
    long_periods = cancel(EchoCanceller(), mic, reference, period_samples=100 * FRAME_SAMPLES).cleaned
    assert np.array_equal(long_periods, np.concatenate(first_out))


_CHILD = """
import hashlib
from tests.test_aec_contract import EchoCanceller, _determinism_input, cancel
mic, reference = _determinism_input()
print(hashlib.sha256(cancel(EchoCanceller(), mic, reference).cleaned.tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_identical_input_gives_identical_output_across_processes() -> None:
    mic, reference = _determinism_input()
    here = hashlib.sha256(cancel(EchoCanceller(), mic, reference).cleaned.tobytes()).hexdigest()
    result = subprocess.run(
        [sys.executable, "-c", _CHILD], cwd=_REPO, capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == here
