"""The wake word listens to both mics while the assistant's echo may sound (device/runtime/hearing.py, `hear`).

Once the canceller has converged, the wake word listens to the cleaned mic during playback; its suppressor can mute
the user along with the echo ("Hey Jarvis" over a warm reply scored 0.03 cleaned and 0.97 raw in the command
corpus). A twin pair of grids listens to the other mic then, and only then: idle listening costs what it did.
The stand-in detectors are real, if simple (a frame's peak), so each answer is known from the signal.
"""

from __future__ import annotations

import numpy as np

from device.core.events import Event, WakeDetected
from device.runtime.hearing import Audio, Hearing
from tests.hearing_fakes import CONFIG, FRAME, MeasuredCanceller, PeakWake, RmsVoice

PERIOD = 160
CLICK_PERIOD = 20
"""The period whose raw mic holds the "wake word" (a loud click): inside the wake grids' third frame."""


def run(hearing: Hearing, periods: int, *, playing: bool, cleaned_click: bool = False) -> list[Event]:
    """`periods` periods of a quiet room with a loud click on the raw mic in `CLICK_PERIOD`; the cleaned mic is
    silent (the suppressor ate it) unless `cleaned_click`; the speaker plays a tone when `playing`."""
    facts: list[Event] = []
    for index in range(periods):
        raw: Audio = np.full(PERIOD, 50, np.int16)
        if index == CLICK_PERIOD:
            raw[80] = 30000
        cleaned = raw.copy() if cleaned_click else np.zeros(PERIOD, np.int16)
        played = np.full(PERIOD, 1000 if playing else 0, np.int16)
        facts += hearing.hear(cleaned, index * PERIOD, played, raw=raw)
    return facts


def wakes(facts: list[Event]) -> list[WakeDetected]:
    return [fact for fact in facts if isinstance(fact, WakeDetected)]


def test_a_wake_word_the_canceller_muted_is_heard_on_the_raw_mic_while_the_assistant_plays() -> None:
    other = PeakWake()
    hearing = Hearing(RmsVoice(), PeakWake(), CONFIG, MeasuredCanceller(), other_wake=other)
    found = wakes(run(hearing, 3 * FRAME // PERIOD, playing=True))
    assert [(w.at_sample, w.score) for w in found] == [(3 * FRAME, 1.0)]

    deaf = Hearing(RmsVoice(), PeakWake(), CONFIG, MeasuredCanceller())  # one ear, as before: it goes unheard
    assert wakes(run(deaf, 3 * FRAME // PERIOD, playing=True)) == []


def test_the_other_ear_is_off_while_nothing_plays() -> None:
    other = PeakWake()
    main = PeakWake()
    hearing = Hearing(RmsVoice(), main, CONFIG, MeasuredCanceller(), other_wake=other)
    found = wakes(run(hearing, 3 * FRAME // PERIOD, playing=False))
    assert [w.at_sample for w in found] == [3 * FRAME]  # nothing echoes: the main grid hears the raw mic
    assert other.frames == [] and len(main.frames) == 3


def test_a_wake_word_both_ears_hear_is_one_detection() -> None:
    hearing = Hearing(RmsVoice(), PeakWake(), CONFIG, MeasuredCanceller(), other_wake=PeakWake())
    found = wakes(run(hearing, 6 * FRAME // PERIOD, playing=True, cleaned_click=True))
    assert [w.at_sample for w in found] == [3 * FRAME]


def test_the_other_ear_starts_afresh_when_echo_sounds_again_after_quiet() -> None:
    other = PeakWake()
    hearing = Hearing(RmsVoice(), PeakWake(), CONFIG, MeasuredCanceller(), other_wake=other)
    silence: Audio = np.zeros(PERIOD, np.int16)
    tone: Audio = np.full(PERIOD, 1000, np.int16)
    quiet_periods = CONFIG.reference_window_samples // PERIOD + 1
    start = 0
    for played, periods in ((tone, 4), (silence, quiet_periods), (tone, 4)):
        for _ in range(periods):
            hearing.hear(silence, start, played, raw=silence)
            start += PERIOD
    # The first stretch keeps the ear on until the reference window has passed: 53 periods, 6 frames and 800
    # samples left over. The second stretch (640 samples) starts a fresh grid: joined to the leftover it would
    # have made a seventh frame spanning the quiet.
    assert (len(other.frames), other.resets) == (6, 2)


def test_without_a_canceller_there_is_no_other_mic_to_listen_to() -> None:
    other = PeakWake()
    hearing = Hearing(RmsVoice(), PeakWake(), CONFIG, other_wake=other)
    run(hearing, 3 * FRAME // PERIOD, playing=True, cleaned_click=True)
    assert other.frames == []
