"""The wake word on two frame grids (device/runtime/wake_grids.py), with the real openWakeWord models: a phrase the
main grid misses only because of where its 80 ms frames fall is found by the second grid, which starts only when
the main grid sees something wake-like and then scores exactly what it would have scored running all along."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from device.config import Config
from device.core.events import SpeechStarted, WakeDetected
from device.engines.vad import SileroVad
from device.engines.wakeword import WakeWordDetector
from device.runtime.framer import Framer
from device.runtime.hearing import Hearing, hearing_config
from device.runtime.wake_grids import CATCH_UP_FRAMES, WakeGrids
from device.sim.speech import synthesize

Audio = npt.NDArray[np.int16]
FRAME = WakeWordDetector.FRAME_SAMPLES
PERIOD = 160
THRESHOLD = 0.5
POSITIONS = range(0, FRAME, 80)
"""Where the phrase starts against the main grid: 16 positions, 5 ms apart."""


@pytest.fixture(scope="module")
def wake(models_dir: Path) -> WakeWordDetector:
    folder = models_dir / "wakeword"
    return WakeWordDetector(
        folder / "melspectrogram.onnx", folder / "embedding_model.onnx", folder / "hey_jarvis_v0.1.onnx"
    )


def in_quiet_room(speech: Audio, at_sample: int, seconds: float = 5.0) -> Audio:
    """`speech` from `at_sample` in a faint noise floor (-55 dBFS), `seconds` long in all."""
    audio = np.random.default_rng(1).normal(0, 60, int(seconds * 16000))
    audio[at_sample : at_sample + len(speech)] += speech
    return np.clip(audio, -32768, 32767).astype(np.int16)


def best_score(grids: WakeGrids, audio: Audio) -> float:
    """The highest score over the audio pushed period by period (no detection logic: the grids alone)."""
    scores = [
        score for start in range(0, len(audio), PERIOD) for _, score in grids.push(audio[start : start + PERIOD], start)
    ]
    return max(scores)


def test_a_phrase_missed_where_the_frames_fall_is_found_by_the_second_grid(wake: WakeWordDetector) -> None:
    # espeak-ng en-us: this very request went unheard in CI at one grid position (0.47; 0.94-1.0 elsewhere).
    phrase = synthesize("Hey Jarvis. Tell me a story.", "en-us")
    offset = wake.twin()
    one, two = [], []
    for position in POSITIONS:
        audio = in_quiet_room(phrase, 32000 + position)
        wake.reset()
        one.append(best_score(WakeGrids(wake, None, THRESHOLD), audio))
        wake.reset()
        two.append(best_score(WakeGrids(wake, offset, THRESHOLD), audio))
    print("one grid:", [round(s, 2) for s in one], "\ntwo grids:", [round(s, 2) for s in two])
    assert min(one) < THRESHOLD  # the miss this is about: without it the test could not fail
    assert min(two) >= THRESHOLD
    assert all(b >= a for a, b in zip(one, two, strict=True))  # the main grid's scores are all still there


def near_miss(wake: WakeWordDetector, phrase: Audio, base: int, seconds: float) -> tuple[Audio, int]:
    """`phrase` in the room at the first grid position from `base` where the main grid alone scores under the
    threshold (the case the second grid is for), and where it starts."""
    for position in POSITIONS:
        audio = in_quiet_room(phrase, base + position, seconds)
        wake.reset()
        if best_score(WakeGrids(wake, None, THRESHOLD), audio) < THRESHOLD:
            return audio, base + position
    raise AssertionError("the main grid hears the phrase at every position: no near miss to test with")


def test_the_second_grid_started_late_scores_what_it_would_have_scored_all_along(wake: WakeWordDetector) -> None:
    phrase = synthesize("Hey Jarvis. Tell me a story.", "en-us")
    audio, _ = near_miss(wake, phrase, 32000, seconds=5.0)  # the peak comes after more than the catch-up reaches back
    wake.reset()
    grids = WakeGrids(wake, wake.twin(), THRESHOLD)
    late: dict[int, float] = {}
    main_ends = set(range(FRAME, len(audio) + 1, FRAME))
    for start in range(0, len(audio), PERIOD):
        for end, score in grids.push(audio[start : start + PERIOD], start):
            if end not in main_ends:
                late[end] = score
    assert grids.offset_starts == 1 and late
    assert max(late.values()) >= THRESHOLD  # the rescue
    always = wake.twin()  # the second grid from the first sample: frames start at half a frame
    along = {start + FRAME: always.score(frame) for start, frame in Framer(FRAME).push(audio[FRAME // 2 :], FRAME // 2)}
    assert min(late) > CATCH_UP_FRAMES * FRAME  # it did start late, after a catch-up
    for end, score in late.items():
        assert score == pytest.approx(along[end], abs=1e-6), end


def test_a_clean_detection_does_not_start_the_second_grid(wake: WakeWordDetector) -> None:
    """A detection's score rises through `MAYBE_SCORE` on its way over the threshold: that is no near miss, and the
    second grid's catch-up (a burst of work) is not spent on it."""
    phrase = synthesize("Hey Jarvis, what time is it?", "en-us+f4")  # 0.99-1.0 at every position
    audio = in_quiet_room(phrase, 32000)
    wake.reset()
    grids = WakeGrids(wake, wake.twin(), THRESHOLD)
    detections = 0
    for start in range(0, len(audio), PERIOD):
        for _end, score in grids.push(audio[start : start + PERIOD], start):
            if score >= THRESHOLD:
                detections += 1
                grids.reset()  # as hearing does on a detection
    assert detections == 1
    assert grids.offset_starts == 0


def test_noise_and_speech_without_the_wake_word_never_start_the_second_grid(wake: WakeWordDetector) -> None:
    """The second grid costs what the first does: listening idle, or to other speech, it must not run."""
    story = synthesize("Once upon a time there was a clockmaker who lived by the sea, and every night", "en-gb")
    talk = synthesize("What is the weather like tomorrow? I think it will rain.", "en-us+f3")
    audio = in_quiet_room(np.concatenate([story, np.zeros(8000), talk]), 16000, seconds=14.0)
    wake.reset()
    grids = WakeGrids(wake, wake.twin(), THRESHOLD)
    best_score(grids, audio)
    assert grids.offset_starts == 0


def longest_pause(speech: Audio) -> tuple[int, int]:
    """(first, end) sample of the longest run of 10 ms steps under 1 % of the peak inside `speech`: between the
    wake word and the request."""
    step = 160
    levels = [float(np.abs(speech[i : i + step].astype(np.int32)).max()) for i in range(0, len(speech), step)]
    quiet = [level < 0.01 * max(levels) for level in levels]
    best, start = (0, 0), None
    for i, still in enumerate([*quiet, False]):
        if still and start is None:
            start = i
        elif not still and start is not None:
            if start > 0 and i < len(quiet) and i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    return best[0] * step, best[1] * step


def test_a_wake_word_the_second_grid_finds_late_starts_the_request_where_it_began(
    wake: WakeWordDetector, models_dir: Path
) -> None:
    """The rescue is reported a catch-up after the wake word's frame; the endpointer resets as of that frame, so
    the request still starts after the pause that follows the wake word. With the lookback shorter than the delay
    (0.2 s here), a reset as of the report found only voice and started the request late (CI: "What time is it?"
    heard from "is it?")."""
    phrase = synthesize("Hey Jarvis. Tell me a story.", "en-us")
    audio, at = near_miss(wake, phrase, 32000, seconds=5.0)
    _, request_at = longest_pause(phrase)
    request_at += at
    config = hearing_config(Config())
    config = replace(config, endpointer=replace(config.endpointer, onset_lookback_samples=3200))
    wake.reset()
    hearing = Hearing(SileroVad(models_dir / "vad" / "silero_vad.onnx"), wake, config, offset_wake=wake.twin())
    facts = [
        (start, fact)
        for start in range(0, len(audio), PERIOD)
        for fact in hearing.hear(audio[start : start + PERIOD], start)
    ]
    (found_in, detection), *_ = [(start, f) for start, f in facts if isinstance(f, WakeDetected)]
    assert found_in - detection.at_sample > 3200, (found_in, detection)  # late: by more than the lookback
    started = [f.onset_sample for start, f in facts if isinstance(f, SpeechStarted) and start >= found_in]
    assert started and abs(started[0] - request_at) <= 1600, (started, request_at)  # within 100 ms of "Tell"
