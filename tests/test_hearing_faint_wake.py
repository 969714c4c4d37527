"""A wake word heard faintly at the start of an utterance (device/runtime/hearing.py, `_faint_wake`).

Over the assistant's echo the wake word model often scores the user's "Hey Jarvis" well under its threshold, and
whisper then writes it as other words that get answered. Hearing reports a score in the faint range within an
utterance under way, each time it rises; the spine decides whether it opens the utterance (tests in
tests/test_core_faint_wake.py). The stand-in detectors are real, if simple (a chunk's RMS, a frame's peak).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from device.core.events import Event, WakeDetected, WakeHeardFaintly
from device.runtime.hearing import Audio, Hearing, HearingConfig
from tests.hearing_fakes import CONFIG, FRAME, PeakWake, RmsVoice

PERIOD = 160
PERIODS_PER_FRAME = FRAME // PERIOD
FAINT = replace(CONFIG, faint_wake_threshold=0.15)


def run(config: HearingConfig, frames: list[int | None]) -> list[Event]:
    """One wake frame per entry: None is a quiet room; a number is voice (RMS 2,500: voice to `RmsVoice`, a wake
    score of 0.125) whose frame peaks at that amplitude (the stand-in wake model's score is the peak / 20,000)."""
    hearing = Hearing(RmsVoice(), PeakWake(), config)
    facts: list[Event] = []
    for index, peak in enumerate(frames):
        for part in range(PERIODS_PER_FRAME):
            mic: Audio = np.full(PERIOD, 20 if peak is None else 2500, np.int16)
            if peak is not None and part == 3:
                mic[0] = peak
            facts += hearing.hear(mic, (index * PERIODS_PER_FRAME + part) * PERIOD)
    return facts


def faint(facts: list[Event]) -> list[tuple[int, float]]:
    return [(f.at_sample, f.score) for f in facts if isinstance(f, WakeHeardFaintly)]


def test_a_faint_score_within_an_utterance_is_reported_each_time_it_rises() -> None:
    facts = run(FAINT, [None, 4000, 2500, 4000, 8000, 6000, 4000])
    # The first voiced frame ends after its voice started an utterance; the same score again, or a lower one,
    # is not news.
    assert faint(facts) == [(2 * FRAME, 0.2), (5 * FRAME, 0.4)]
    assert not any(isinstance(f, WakeDetected) for f in facts)


def test_each_utterance_reports_afresh_and_quiet_reports_nothing() -> None:
    frames: list[int | None] = [None, 2500, 4000, 8000, *[None] * 10, 2500, 4000, 4000]
    assert faint(run(FAINT, frames)) == [(3 * FRAME, 0.2), (4 * FRAME, 0.4), (16 * FRAME, 0.2)]


def test_below_the_faint_threshold_or_with_it_off_nothing_is_reported() -> None:
    assert faint(run(FAINT, [None, 2500, 2900, 2500])) == []  # 0.125 and 0.145: under 0.15
    assert faint(run(CONFIG, [None, 2500, 4000, 8000])) == []  # the threshold 0 is off


def test_a_score_over_the_threshold_is_a_detection_and_its_falling_tail_is_not_faint() -> None:
    facts = run(FAINT, [None, 2500, 4000, 12000, 8000, 6000])
    assert [(f.at_sample, f.score) for f in facts if isinstance(f, WakeDetected)] == [(4 * FRAME, 0.6)]
    assert faint(facts) == [(3 * FRAME, 0.2)]  # before the detection; after it, within the refractory, none


def test_the_words_after_a_faint_wake_word_begin_at_the_last_pause_before_its_frame() -> None:
    """The score peaks late, so the pause says where the words after the wake word begin: here the quiet frame
    2 (chunks of 512 from 2,560; the chunk from 3,584 is half voice, no silence)."""
    facts = run(FAINT, [None, 2500, None, 4000, 8000])
    found = [(f.at_sample, f.words_from_sample) for f in facts if isinstance(f, WakeHeardFaintly)]
    assert found == [(4 * FRAME, 3072), (5 * FRAME, 3072)]
    before = [f.words_from_sample for f in run(FAINT, [None, 4000]) if isinstance(f, WakeHeardFaintly)]
    assert before == [512]  # no pause within the utterance: the one before it (the spine hears it whole)
