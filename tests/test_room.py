"""The simulated echo path and room noise: delay, level, streaming and determinism, measured on samples."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest

from device.sim.room import EchoPath, RoomNoise, room_impulse_response
from device.sim.scene import RoomSpec

RATE_HZ = 16000
FRAME_SAMPLES = 160


def stream(path: EchoPath, signal: npt.NDArray[np.int16], frame_samples: int) -> npt.NDArray[np.float32]:
    frames = [path.process(signal[start : start + frame_samples]) for start in range(0, signal.size, frame_samples)]
    return np.concatenate(frames)


def impulse(length: int, amplitude: int = 10000) -> npt.NDArray[np.int16]:
    signal = np.zeros(length, dtype=np.int16)
    signal[0] = amplitude
    return signal


def energy_db(signal: npt.NDArray[np.floating] | npt.NDArray[np.integer]) -> float:
    return float(10 * np.log10(np.sum(signal.astype(np.float64) ** 2)))


@pytest.mark.parametrize(
    "room",
    [
        RoomSpec(),
        RoomSpec(echo_delay_ms=120.0, echo_gain_db=-10.0, rt60_s=0.6, seed=7),
        RoomSpec(echo_delay_ms=0.0, echo_gain_db=0.0, rt60_s=0.05, seed=3),
    ],
)
def test_impulse_arrives_after_the_delay_with_the_energy_of_the_gain(room: RoomSpec) -> None:
    path = EchoPath(room, RATE_HZ)
    delay_samples = round(room.echo_delay_ms * RATE_HZ / 1000)
    length = delay_samples + path.impulse_response.size + FRAME_SAMPLES
    signal = impulse(length)
    echo = stream(path, signal, FRAME_SAMPLES)
    assert echo.dtype == np.float32
    assert echo.size == signal.size
    assert abs(int(np.argmax(np.abs(echo))) - delay_samples) <= 1
    assert not np.any(echo[: max(0, delay_samples - 1)])  # nothing before the sound can have travelled
    assert energy_db(echo) == pytest.approx(energy_db(signal) + room.echo_gain_db, abs=1.0)


def test_streaming_in_frames_equals_one_call_on_the_whole_signal() -> None:
    signal = np.random.default_rng(1).integers(-20000, 20000, size=RATE_HZ * 2, dtype=np.int16)
    whole = EchoPath(RoomSpec(), RATE_HZ).process(signal)
    framed = stream(EchoPath(RoomSpec(), RATE_HZ), signal, FRAME_SAMPLES)
    # Exactly equal, not close: the filter does the same arithmetic per sample however the input is cut.
    assert np.array_equal(framed, whole)


def test_uneven_frames_also_equal_one_call() -> None:
    signal = np.random.default_rng(2).integers(-20000, 20000, size=4000, dtype=np.int16)
    whole = EchoPath(RoomSpec(), RATE_HZ).process(signal)
    path = EchoPath(RoomSpec(), RATE_HZ)
    cuts = [0, 1, 7, 300, 301, 1000, 2500, 4000]
    parts = [path.process(signal[start:end]) for start, end in itertools.pairwise(cuts)]
    assert np.array_equal(np.concatenate(parts), whole)


def test_same_seed_same_echo_other_seed_other_echo() -> None:
    signal = np.random.default_rng(3).integers(-20000, 20000, size=3200, dtype=np.int16)
    first = EchoPath(RoomSpec(seed=5), RATE_HZ).process(signal)
    assert np.array_equal(first, EchoPath(RoomSpec(seed=5), RATE_HZ).process(signal))
    assert not np.array_equal(first, EchoPath(RoomSpec(seed=6), RATE_HZ).process(signal))


def test_impulse_response_is_unit_energy_direct_tap_first_and_capped() -> None:
    response = room_impulse_response(rt60_s=0.3, rate_hz=RATE_HZ, seed=0)
    assert float(np.sum(response**2)) == pytest.approx(1.0)
    assert int(np.argmax(np.abs(response))) == 0
    assert response.size == round(1.5 * 0.3 * RATE_HZ)
    # The tail decays: the last tenth holds a vanishing share of the energy.
    assert float(np.sum(response[-response.size // 10 :] ** 2)) < 1e-6


@pytest.mark.parametrize("noise_dbfs", [-60.0, -40.0, -20.0])
def test_noise_rms_matches_its_level(noise_dbfs: float) -> None:
    noise = RoomNoise(noise_dbfs, seed=0)
    samples = np.concatenate([noise.next(FRAME_SAMPLES) for _ in range(200)])
    assert samples.dtype == np.float32
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(samples.astype(np.float64) ** 2)) / 32768)
    assert rms_dbfs == pytest.approx(noise_dbfs, abs=0.5)


def test_noise_is_deterministic_per_seed() -> None:
    first = RoomNoise(-60.0, seed=4).next(160)
    assert np.array_equal(first, RoomNoise(-60.0, seed=4).next(160))
    assert not np.array_equal(first, RoomNoise(-60.0, seed=5).next(160))
    # Streaming in pieces gives the same samples as one call.
    noise = RoomNoise(-60.0, seed=4)
    assert np.array_equal(np.concatenate([noise.next(100), noise.next(60)]), first)
