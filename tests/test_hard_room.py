"""Rooms as hard as real ones (issue 9, item 5): clock drift, delay jumps, a clipping speaker, FSM stalls.

The physics is measured on samples, against what the scene key promises: the delay by cross-correlation, the
clipping by its peak and its harmonics. A stall runs the whole daemon in the simulated room (real models).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy.signal import correlate

from device.config import Config, load_config, samples
from device.core.events import TtsChunkReady, WakeDetected
from device.engines.load import Engines, load_engines
from device.runtime.eventlog import LoggedStep, read_log
from device.sim.card import VirtualCard
from device.sim.demo import Rig, run_virtual, run_wall
from device.sim.playback import PlaybackGate
from device.sim.room import FULL_SCALE, EchoPath
from device.sim.scene import DelayJump, RoomSpec, Say, Scene, Stall

RATE_HZ = 16000
FRAME_SAMPLES = 160
# A short room (240 taps) keeps the echo's cross-correlation peak sharp and the tests fast.
DRY = RoomSpec(echo_delay_ms=40.0, echo_gain_db=0.0, rt60_s=0.01, noise_dbfs=-120.0)
Signal = npt.NDArray[np.float32]


def stream(path: EchoPath, signal: npt.NDArray[np.int16], frame_samples: int = FRAME_SAMPLES) -> Signal:
    return np.concatenate([path.process(signal[i : i + frame_samples]) for i in range(0, signal.size, frame_samples)])


def noise(seconds: float, seed: int = 0) -> npt.NDArray[np.int16]:
    return np.random.default_rng(seed).integers(-8000, 8000, size=round(seconds * RATE_HZ), dtype=np.int16)


def sine(seconds: float, hz: float, dbfs: float) -> npt.NDArray[np.int16]:
    time_s = np.arange(round(seconds * RATE_HZ)) / RATE_HZ
    return np.rint(FULL_SCALE * 10 ** (dbfs / 20) * np.sin(2 * np.pi * hz * time_s)).astype(np.int16)


WINDOW_S = 0.1


def measured_delay_samples(speaker: npt.NDArray[np.int16], echo: Signal, at_s: float) -> float:
    """The echo's delay around `at_s`: the cross-correlation peak over 0.1 s, to a hundredth of a sample.

    The correlation of noise with its delayed copy is band-limited, so between lags it is found by sinc
    (Whittaker-Shannon) interpolation of the lags around the peak; a parabola would be biased by 0.2 samples."""
    lo, hi = round(at_s * RATE_HZ), round((at_s + WINDOW_S) * RATE_HZ)
    max_lag = 4000
    heard = echo[lo:hi].astype(np.float64)
    played = speaker[lo - max_lag : hi].astype(np.float64)
    # correlation[k] pairs heard[n] with played[n + k]: lag = max_lag - k.
    correlation = correlate(played, heard, mode="valid", method="fft")
    k = int(np.argmax(correlation))
    near = np.arange(k - 64, k + 65)
    grid = k + np.arange(-1.0, 1.0, 0.01)
    interpolated = np.sinc(grid[:, None] - near[None, :]) @ correlation[near]
    return float(max_lag - grid[int(np.argmax(interpolated))])


# ---------------------------------------------------------------------------------------------- drift


@pytest.mark.parametrize("drift_ppm", [100.0, -100.0, 1000.0])
def test_drift_moves_the_echo_by_drift_ppm_microseconds_each_second(drift_ppm: float) -> None:
    speaker = noise(32.0)
    echo = stream(EchoPath(replace(DRY, drift_ppm=drift_ppm), RATE_HZ), speaker)
    start, later = measured_delay_samples(speaker, echo, 1.0), measured_delay_samples(speaker, echo, 31.0)
    # +100 ppm: 0.1 ms later each second, so 3 ms (48 samples) over 30 s.
    assert later - start == pytest.approx(drift_ppm * 1e-6 * 30.0 * RATE_HZ, abs=0.1)
    # And the delay itself is the promised one (in the window's middle), at both ends.
    for at_s, measured in ((1.0, start), (31.0, later)):
        assert measured == pytest.approx(640 + drift_ppm * 1e-6 * (at_s + WINDOW_S / 2) * RATE_HZ, abs=0.15)


def test_without_drift_the_same_measurement_sees_a_constant_delay() -> None:
    speaker = noise(32.0)
    echo = stream(EchoPath(DRY, RATE_HZ), speaker)
    assert measured_delay_samples(speaker, echo, 1.0) == pytest.approx(640.0, abs=0.05)
    assert measured_delay_samples(speaker, echo, 31.0) == pytest.approx(640.0, abs=0.05)


def test_a_drifting_echo_keeps_its_level_and_colour() -> None:
    """Interpolating between samples must not filter the echo: at half a sample (the worst case), speech-band
    energy is within 0.3 dB of the same echo at a whole-sample delay."""
    speaker = noise(4.0, seed=3)
    # At +1000 ppm the delay crosses 16 fractions of a sample per second; compare one second's energy.
    drifting = stream(EchoPath(replace(DRY, drift_ppm=1000.0), RATE_HZ), speaker)
    steady = stream(EchoPath(DRY, RATE_HZ), speaker)

    def band_db(signal: Signal, lo_hz: float, hi_hz: float) -> float:
        spectrum = np.abs(np.fft.rfft(signal[RATE_HZ : 3 * RATE_HZ].astype(np.float64))) ** 2
        hz = np.fft.rfftfreq(2 * RATE_HZ, 1 / RATE_HZ)
        return float(10 * np.log10(np.sum(spectrum[(hz >= lo_hz) & (hz < hi_hz)])))

    for lo_hz, hi_hz in ((100.0, 1000.0), (1000.0, 3000.0), (3000.0, 4000.0)):
        assert band_db(drifting, lo_hz, hi_hz) == pytest.approx(band_db(steady, lo_hz, hi_hz), abs=0.3)


# ---------------------------------------------------------------------------------------------- delay jumps


def test_a_jump_moves_the_echo_by_exactly_its_samples_from_its_time_on() -> None:
    speaker = noise(3.0, seed=1)
    jumps = (DelayJump(at_s=1.0, ms=5.0), DelayJump(at_s=2.0, ms=-7.5))  # +80 samples, then -120
    jumped = stream(EchoPath(replace(DRY, delay_jumps=jumps), RATE_HZ), speaker)
    steady = stream(EchoPath(DRY, RATE_HZ), speaker)
    taps = EchoPath(DRY, RATE_HZ).impulse_response.size
    assert np.array_equal(jumped[:RATE_HZ], steady[:RATE_HZ])  # nothing changes before the first jump
    # After each jump (and the room's tail of the old delay), the echo is the steady echo shifted by the jump.
    first = slice(RATE_HZ + taps, 2 * RATE_HZ)
    np.testing.assert_allclose(jumped[first], steady[RATE_HZ + taps - 80 : 2 * RATE_HZ - 80], rtol=0, atol=1e-2)
    second = slice(2 * RATE_HZ + taps, 3 * RATE_HZ - 40)
    np.testing.assert_allclose(jumped[second], steady[2 * RATE_HZ + taps + 40 : 3 * RATE_HZ], rtol=0, atol=1e-2)
    assert measured_delay_samples(speaker, jumped, 0.5) == pytest.approx(640.0, abs=0.05)
    assert measured_delay_samples(speaker, jumped, 1.5) == pytest.approx(720.0, abs=0.05)
    assert measured_delay_samples(speaker, jumped, 2.5) == pytest.approx(600.0, abs=0.05)


def test_jumps_and_drift_add_up_and_the_delay_is_reported_per_sample() -> None:
    room = replace(DRY, drift_ppm=200.0, delay_jumps=(DelayJump(at_s=0.5, ms=2.0),))
    path = EchoPath(room, RATE_HZ)
    at = np.array([0, 7999, 8000, 16000], np.int64)
    expected = 640.0 + 200e-6 * at + np.array([0.0, 0.0, 32.0, 32.0])
    np.testing.assert_allclose(path.delay_samples_at(at), expected, rtol=0, atol=1e-9)


def test_a_delay_never_goes_below_zero_even_when_drift_pulls_it_down() -> None:
    room = RoomSpec(echo_delay_ms=1.0, drift_ppm=-1000.0)  # 16 samples, less 16 samples per second
    path = EchoPath(room, RATE_HZ)
    assert path.delay_samples_at(np.array([0, 8000, 16000, 32000], np.int64)).tolist() == [16.0, 8.0, 0.0, 0.0]


# ---------------------------------------------------------------------------------------------- streaming


HARD = RoomSpec(
    echo_delay_ms=37.3,
    echo_gain_db=-6.0,
    rt60_s=0.2,
    seed=4,
    drift_ppm=-333.0,
    delay_jumps=(DelayJump(at_s=0.3, ms=12.34), DelayJump(at_s=0.3, ms=-3.0), DelayJump(at_s=0.61, ms=-20.0)),
    speaker_clip_dbfs=-9.0,
)


def test_a_hard_room_streams_frames_exactly_as_one_call_on_the_whole_signal() -> None:
    signal = noise(1.0, seed=2) * 3
    whole = EchoPath(HARD, RATE_HZ).process(signal)
    assert np.array_equal(stream(EchoPath(HARD, RATE_HZ), signal), whole)
    path = EchoPath(HARD, RATE_HZ)
    cuts = [0, 1, 7, 300, 301, 4800, 4801, 9760, 16000]
    parts = [path.process(signal[start:end]) for start, end in itertools.pairwise(cuts)]
    assert np.array_equal(np.concatenate(parts), whole)


def test_a_hard_room_is_deterministic() -> None:
    signal = noise(1.0, seed=5)
    assert np.array_equal(stream(EchoPath(HARD, RATE_HZ), signal), stream(EchoPath(HARD, RATE_HZ), signal))


# ---------------------------------------------------------------------------------------------- clipping


def harmonic_db(signal: Signal, fundamental_hz: float, harmonic: int) -> float:
    """Level of one harmonic relative to the fundamental, over one second (1 Hz bins, Hann window)."""
    second = signal[RATE_HZ // 2 : RATE_HZ // 2 + RATE_HZ].astype(np.float64) * np.hanning(RATE_HZ)
    spectrum = np.abs(np.fft.rfft(second))
    fundamental = spectrum[round(fundamental_hz) - 2 : round(fundamental_hz) + 3].max()
    overtone = spectrum[round(harmonic * fundamental_hz) - 2 : round(harmonic * fundamental_hz) + 3].max()
    return float(20 * np.log10(overtone / fundamental))


def test_a_clipping_speaker_bounds_the_echo_by_its_knee() -> None:
    loud = sine(2.0, 500.0, dbfs=-1.0)
    room = replace(DRY, speaker_clip_dbfs=-20.0)
    path = EchoPath(room, RATE_HZ)
    clipped, clean = stream(path, loud), stream(EchoPath(DRY, RATE_HZ), loud)
    knee = FULL_SCALE * 10 ** (-20.0 / 20)
    # Whatever the speaker is fed, the room is driven by at most the knee: the echo is bounded by knee x |h|.
    bound = knee * float(np.sum(np.abs(path.impulse_response)))
    assert float(np.max(np.abs(clipped))) <= bound
    assert float(np.max(np.abs(clean))) > 2 * bound  # the same sound through a linear speaker is not


def test_a_clipping_speaker_adds_odd_harmonics_a_linear_one_does_not() -> None:
    loud = sine(2.0, 500.0, dbfs=-1.0)
    clipped = stream(EchoPath(replace(DRY, speaker_clip_dbfs=-12.0), RATE_HZ), loud)
    clean = stream(EchoPath(DRY, RATE_HZ), loud)
    assert harmonic_db(clipped, 500.0, 3) > -20.0
    assert harmonic_db(clipped, 500.0, 5) > -35.0
    assert harmonic_db(clean, 500.0, 3) < -70.0


def test_a_quiet_sound_passes_a_clipping_speaker_nearly_untouched() -> None:
    quiet = sine(2.0, 500.0, dbfs=-40.0)  # 34 dB under the knee
    clipped = stream(EchoPath(replace(DRY, speaker_clip_dbfs=-6.0), RATE_HZ), quiet)
    clean = stream(EchoPath(DRY, RATE_HZ), quiet)
    assert float(np.max(np.abs(clipped - clean))) < 1e-3 * float(np.max(np.abs(clean)))
    assert harmonic_db(clipped, 500.0, 3) < -60.0


def test_the_card_records_the_clean_speaker_signal_only_the_echo_is_distorted() -> None:
    """The speaker track is the reference Spine knows: the digital signal, not what the cone made of it."""
    scene = Scene(room=replace(DRY, speaker_clip_dbfs=-12.0))
    gate = PlaybackGate(fade_samples=80, report=lambda _event: None)
    card = VirtualCard(gate, scene, RATE_HZ, capacity_samples=RATE_HZ)
    loud = sine(0.5, 500.0, dbfs=-1.0)
    gate.open(1)
    gate.queue(1, loud)
    gate.finish(1)
    for start in range(0, loud.size, FRAME_SAMPLES):
        card.tick(start, FRAME_SAMPLES)
    assert np.array_equal(card.speaker[: loud.size], loud)
    knee = FULL_SCALE * 10 ** (-12.0 / 20)
    assert float(np.max(np.abs(card.echo))) <= knee * float(np.sum(np.abs(card.echo_path.impulse_response)))
    assert int(np.max(np.abs(card.speaker))) > 2 * knee


def test_a_cut_then_the_apology_a_period_later_is_not_the_assistant_falling_silent() -> None:
    """On the wall clock the card can run a period between the cut and the next epoch's open (one step's two
    commands): a user who waits for silence waits for the apology too, and then `delay_s` from its end."""
    scene = Scene(room=DRY, say=(Say("Hey Jarvis.", after="silent", delay_s=0.5),))
    gate = PlaybackGate(fade_samples=80, report=lambda _event: None)
    card = VirtualCard(gate, scene, RATE_HZ, capacity_samples=4 * RATE_HZ)
    now = 0

    def run(periods: int) -> None:
        nonlocal now
        for _ in range(periods):
            card.tick(now, FRAME_SAMPLES)
            now += FRAME_SAMPLES

    gate.open(1)
    gate.queue(1, sine(1.0, 500.0, dbfs=-20.0))
    run(30)  # 0.3 s of the story
    gate.cut(1)
    run(1)  # the card's period between the cut and the apology's open: idle
    assert not gate.busy()
    gate.open(2)
    gate.queue(2, sine(0.4, 300.0, dbfs=-20.0))
    gate.finish(2)
    run(40)  # the apology, then silence
    apology_end = int(np.flatnonzero(card.epochs == 2)[-1]) + 1
    run(80)
    (utterance,) = card.player.started
    assert abs(utterance.start_sample - (apology_end + RATE_HZ // 2)) <= FRAME_SAMPLES, (utterance, apology_end)


# ---------------------------------------------------------------------------------------------- stalls (slow)


STALL_AT_S = 4.45  # the story has just started playing; its next two sentences are due within the stall
STALL_MS = 1500.0


def stall_scene(stalls: tuple[Stall, ...]) -> Scene:
    return Scene(
        say=(Say("Hey Jarvis. Tell me a story.", at_s=1.0), Say("Hey Jarvis. What time is it?", at_s=4.5)),
        duration_s=6.5,  # the stall ends at 5.95 s; the wake word spoken in it is stepped then
        stall=stalls,
    )


@pytest.fixture(scope="module")
def config(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Config:
    path = tmp_path_factory.mktemp("hard_room") / "spine.toml"
    path.write_text(f'[models]\ndir = "{models_dir}"\n')
    return load_config(path)


@pytest.fixture(scope="module")
def engines(config: Config) -> Engines:
    return load_engines(config, deterministic=True)


@dataclass(frozen=True)
class StallRun:
    steps: tuple[LoggedStep, ...]
    log_bytes: bytes
    rig: Rig
    ring_written: dict[int, int]
    """Samples written into the playback ring so far, after the card's tick that started at each sample."""


def run_stall_scene(
    scene: Scene, config: Config, engines: Engines, log_path: Path, run: Callable[[Rig, Scene], object] = run_virtual
) -> StallRun:
    for detector in (engines.vad, engines.wake, engines.own_wake):  # streaming state of the previous rig
        detector.reset()
    rig = Rig(config, scene, engines, log_path, "virtual")
    ring_written: dict[int, int] = {}
    tick = rig.card.tick

    def recording_tick(start: int, n: int) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
        heard = tick(start, n)
        ring_written[start] = rig.gate.callback.playback.written
        return heard

    rig.card.tick = recording_tick  # type: ignore[method-assign]
    run(rig, scene)
    return StallRun(read_log(log_path).steps, log_path.read_bytes(), rig, ring_written)


@pytest.mark.slow
def test_a_stall_freezes_the_loop_while_the_card_plays_on_and_the_backlog_is_handled_after_it(
    config: Config, engines: Engines, tmp_path: Path
) -> None:
    stall_start, resume = samples(STALL_AT_S), samples(STALL_AT_S) + samples(STALL_MS / 1000)
    assert stall_start % config.period_samples == 0  # the stall starts exactly there (else: the next period)
    free = run_stall_scene(stall_scene(()), config, engines, tmp_path / "free.jsonl")
    stalled = run_stall_scene(stall_scene((Stall(STALL_AT_S, STALL_MS),)), config, engines, tmp_path / "stall.jsonl")

    # Without the stall the loop has work inside the window: two sentences of the story, the user's wake word.
    inside = [s for s in free.steps if stall_start < s.t < resume]
    assert sum(isinstance(s.event, TtsChunkReady) for s in inside) >= 1, [s.event for s in inside]
    assert any(isinstance(s.event, WakeDetected) for s in inside)
    # With it, nothing is stamped inside: every event after the stall is stamped at or after its end ...
    assert [s for s in stalled.steps if stall_start < s.t < resume] == []
    after = [s for s in stalled.steps if s.t >= resume]
    # ... the mic periods that piled up are heard then: the wake word was spoken inside the stall.
    wake = next(s for s in after if isinstance(s.event, WakeDetected))
    assert isinstance(wake.event, WakeDetected)
    assert stall_start < wake.event.at_sample < resume <= wake.t
    # ... and the sentence that became ready meanwhile is stepped then too, after the heard facts (stale by then).
    ready = next(s.event for s in inside if isinstance(s.event, TtsChunkReady))
    assert [s.t for s in stalled.steps if s.event == ready] == [resume]
    assert stalled.steps.index(wake) < next(i for i, s in enumerate(stalled.steps) if s.event == ready)

    # The card kept playing the story from the ring, and nothing wrote new audio into it while frozen.
    card = stalled.rig.card
    assert np.all(card.epochs[stall_start:resume] == card.epochs[stall_start]) and card.epochs[stall_start] > 0
    assert float(np.std(card.speaker[stall_start:resume].astype(np.float64))) > 100.0
    frozen = {stalled.ring_written[start] for start in range(stall_start, resume, config.period_samples)}
    assert len(frozen) == 1
    assert len({free.ring_written[start] for start in range(stall_start, resume, config.period_samples)}) > 1

    again = run_stall_scene(stall_scene((Stall(STALL_AT_S, STALL_MS),)), config, engines, tmp_path / "again.jsonl")
    assert again.log_bytes == stalled.log_bytes


@pytest.mark.slow
def test_a_stall_in_wall_clock_time_is_a_real_sleep_of_the_loop_while_the_card_thread_ticks(
    config: Config, engines: Engines, tmp_path: Path
) -> None:
    scene = Scene(duration_s=2.0, stall=(Stall(at_s=0.5, ms=600.0),))
    for detector in (engines.vad, engines.wake, engines.own_wake):
        detector.reset()
    rig = Rig(config, scene, engines, tmp_path / "wall.jsonl", "wall")
    # Each mic period as the loop hears it: when (monotonic s), which period, and where the card was by then.
    heard: list[tuple[float, int, int]] = []
    threads: set[threading.Thread] = set()
    hear = rig.hear

    def timed_hear(mic: npt.NDArray[np.int16], start: int, played: npt.NDArray[np.int16]) -> list[object]:
        threads.add(threading.current_thread())
        heard.append((time.monotonic(), start, rig.card.written))
        return list(hear(mic, start, played))

    rig.hear = timed_hear  # type: ignore[assignment,method-assign]
    began = time.monotonic()
    run = run_wall(rig, scene)
    assert time.monotonic() - began >= 2.0
    assert run.end_sample >= samples(2.0)
    assert threads == {threading.main_thread()}
    # The loop went quiet for the stall's 0.6 s (a sleep is never shorter) once the card was 0.5 s in (a first
    # model inference on a loaded machine may pause it too, so the pause is looked for where the stall is) ...
    paused = [
        index
        for index, (earlier, later) in enumerate(itertools.pairwise(heard))
        if later[0] - earlier[0] >= 0.59 and samples(0.25) <= earlier[1] <= samples(0.8)
    ]
    assert paused, "the loop never paused at the stall"
    # ... while the card thread ticked on: when it woke, more than 0.5 s of mic had piled up to be heard.
    _, first_after, card_at = heard[paused[0] + 1]
    assert card_at - first_after >= samples(0.5)
