"""Hearing with the real echo canceller: the user is heard over playback from the first second of the first
answer, before the canceller converges as well as after; the assistant's own echo never is."""

from __future__ import annotations

import numpy as np

from device.core.events import EchoCancellerChanged, SpeechStarted, VoiceHint
from device.engines.aec import EchoCanceller
from device.runtime.hearing import Hearing
from device.sim.room import EchoPath
from device.sim.scene import RoomSpec
from device.sim.speech import synthesize
from tests.hearing_fakes import CONFIG, PeakWake, RmsVoice

RATE = 16000
PERIOD = 160


def run(hearing: Hearing, mic: np.ndarray, played: np.ndarray) -> list[tuple[int, object]]:
    facts: list[tuple[int, object]] = []
    for start in range(0, len(mic) - PERIOD + 1, PERIOD):
        cleaned, changed = hearing.clean(mic[start : start + PERIOD], played[start : start + PERIOD])
        facts += [(start, f) for f in changed]
        facts += [(start, f) for f in hearing.hear(cleaned, start, played[start : start + PERIOD])]
    return facts


def speech(text: str, voice: str, seconds: float) -> np.ndarray:
    audio = synthesize(text, voice, rate_hz=RATE)
    return np.resize(audio, int(seconds * RATE)).astype(np.float32)  # repeated to fill the time


def test_the_user_is_heard_before_and_after_the_canceller_converged_and_the_echo_never() -> None:
    seconds = 12.0
    assistant = np.clip(speech("Once upon a time there was a clockmaker named Ada.", "en-us", seconds), -32768, 32767)
    played = assistant.astype(np.int16)
    echo = EchoPath(RoomSpec(echo_delay_ms=60, echo_gain_db=-6, rt60_s=0.3, noise_dbfs=-70, seed=3), RATE)
    echoed = np.concatenate([echo.process(played[i : i + PERIOD]) for i in range(0, len(played), PERIOD)])
    user = np.zeros(len(played), np.float32)
    early, late = int(1.5 * RATE), int(9.0 * RATE)  # before the canceller can converge, and well after
    word = synthesize("Hey, wait a moment please.", "en-gb", rate_hz=RATE)
    user[early : early + len(word)] += word
    user[late : late + len(word)] += word
    mic = np.clip(echoed + user, -32768, 32767).astype(np.int16)

    hearing = Hearing(RmsVoice(), PeakWake(), CONFIG, EchoCanceller(), raw_vad=RmsVoice())
    facts = run(hearing, mic, played)

    converged_at = next(t for t, f in facts if isinstance(f, EchoCancellerChanged) and f.converged)
    assert early + len(word) < converged_at < late, converged_at / RATE
    voiced = [t for t, f in facts if isinstance(f, VoiceHint | SpeechStarted)]
    during = [[t for t in voiced if onset <= t <= onset + len(word)] for onset in (early, late)]
    assert all(during), f"not heard: early {during[0]}, late {during[1]}"
    assert all(early <= t <= early + len(word) or late <= t <= late + len(word) for t in voiced), [
        t / RATE for t in voiced
    ]  # nothing from the echo alone
    first_hint = min(during[0]) - early
    assert first_hint <= 0.3 * RATE, first_hint / RATE  # within a syllable or two, before any convergence


def test_the_wake_word_hears_the_raw_mic_once_no_echo_can_sound_and_the_cleaned_one_while_it_can() -> None:
    """A converged canceller still reshapes the user when nothing plays (measured: "Hey Jarvis" 2 s after an
    apology scored 0.98 raw, 0.45 cleaned, under the threshold): with no echo to remove, the raw mic is the truth."""
    played = np.zeros(12 * RATE, np.int16)
    story = np.clip(speech("Once upon a time there was a clockmaker named Ada.", "en-us", 9.0), -32768, 32767)
    played[: len(story)] = story.astype(np.int16)
    echo = EchoPath(RoomSpec(echo_delay_ms=60, echo_gain_db=-6, rt60_s=0.3, noise_dbfs=-70, seed=3), RATE)
    echoed = np.concatenate([echo.process(played[i : i + PERIOD]) for i in range(0, len(played), PERIOD)])
    user = np.zeros(len(played), np.float32)
    word = synthesize("Hey Jarvis.", "en-gb", rate_hz=RATE)
    user[10 * RATE : 10 * RATE + len(word)] = word  # a second after the story's last sample
    mic = np.clip(echoed + user, -32768, 32767).astype(np.int16)

    wake = PeakWake()
    hearing = Hearing(RmsVoice(), wake, CONFIG, EchoCanceller(), raw_vad=RmsVoice())
    cleaned = np.zeros_like(mic)
    converged_at = None
    for start in range(0, len(mic), PERIOD):
        out, changed = hearing.clean(mic[start : start + PERIOD], played[start : start + PERIOD])
        cleaned[start : start + PERIOD] = out
        if any(isinstance(f, EchoCancellerChanged) and f.converged for f in changed):
            converged_at = start
        hearing.hear(out, start, played[start : start + PERIOD], raw=mic[start : start + PERIOD])
    assert converged_at is not None and converged_at < 8 * RATE, converged_at
    frame = PeakWake.FRAME_SAMPLES
    scored = np.asarray(wake.frames, np.int16).reshape(-1)
    assert len(scored) == len(mic) // frame * frame
    while_echo = slice(8 * RATE, 8 * RATE + frame)  # converged, the story playing
    after = slice(10 * RATE, 10 * RATE + 4 * frame)  # the user, nothing played for a second
    assert np.array_equal(scored[while_echo], cleaned[while_echo])
    assert np.array_equal(scored[after], mic[after])
    assert not np.array_equal(cleaned[after], mic[after])  # the canceller did change the user: the test can fail
