"""Hearing with the real echo canceller: speech interrupts playback only once the canceller has converged."""

from __future__ import annotations

import numpy as np

from device.core.events import EchoCancellerChanged, SpeechStarted, VoiceHint
from device.engines.aec import EchoCanceller
from device.runtime.hearing import Hearing
from device.sim.room import EchoPath
from device.sim.scene import RoomSpec
from device.sim.speech import synthesize
from tests.test_runtime_units import CONFIG, PeakWake, RmsVoice

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


def test_speech_over_playback_counts_only_after_the_canceller_converged() -> None:
    seconds = 12.0
    assistant = np.clip(speech("Once upon a time there was a clockmaker named Ada.", "en-us", seconds), -32768, 32767)
    played = assistant.astype(np.int16)
    echo = EchoPath(RoomSpec(echo_delay_ms=60, echo_gain_db=-6, rt60_s=0.3, noise_dbfs=-70, seed=3), RATE)
    echoed = np.concatenate([echo.process(played[i : i + PERIOD]) for i in range(0, len(played), PERIOD)])
    user = np.zeros(len(played), np.float32)
    early, late = int(1.0 * RATE), int(9.0 * RATE)  # before the canceller can converge, and well after
    word = synthesize("Hey, wait a moment please.", "en-gb", rate_hz=RATE)
    user[early : early + len(word)] += word
    user[late : late + len(word)] += word
    mic = np.clip(echoed + user, -32768, 32767).astype(np.int16)

    hearing = Hearing(RmsVoice(), PeakWake(), CONFIG, EchoCanceller())
    facts = run(hearing, mic, played)

    converged_at = next(t for t, f in facts if isinstance(f, EchoCancellerChanged) and f.converged)
    assert early + len(word) < converged_at < late, converged_at / RATE
    voiced = [t for t, f in facts if isinstance(f, VoiceHint | SpeechStarted)]
    assert voiced, "the user after convergence was not heard"
    assert all(t >= late for t in voiced), [t / RATE for t in voiced]  # nothing from the echo, nor the early user
