"""The runtime's sample-time parts, each fed explicit sample times: timers, the capture history, and hearing
(model frames cut at fixed sample indices, wake detections, utterances, the VAD's fresh starts).

No clock is read and nothing sleeps. The job runners are in tests/test_job_runners.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from device.config import Config, WakeConfig
from device.core.events import Event, SpeechEnded, SpeechStarted, TimerFired, VoiceHint, WakeDetected
from device.runtime.capture import CaptureHistory
from device.runtime.endpointer import EndpointerConfig
from device.runtime.hearing import Hearing, HearingConfig, hearing_config
from device.runtime.timers import Timers
from tests.hearing_fakes import CHUNK, CONFIG, FRAME, PeakWake, RmsVoice

# ------------------------------------------------------------------------------------------------- timers


def test_timers_pop_due_ones_earliest_first_and_ties_in_arming_order() -> None:
    timers = Timers()
    timers.arm("listen", 1, 500)
    timers.arm("alarm", 7, 300)
    timers.arm("utterance", 1, 500)
    timers.arm("alarm", 2, 900)
    timers.arm("alarm", 3, 300)
    assert timers.next_due() == 300
    assert timers.pop_due(299) == []
    assert timers.pop_due(600) == [
        TimerFired("alarm", 7),
        TimerFired("alarm", 3),
        TimerFired("listen", 1),
        TimerFired("utterance", 1),
    ]
    assert (timers.pop_due(600), timers.armed(), timers.next_due()) == ([], 1, 900)
    assert timers.pop_due(900) == [TimerFired("alarm", 2)]
    assert (timers.armed(), timers.next_due()) == (0, None)


def test_a_cancelled_timer_never_fires_and_cancelling_an_unknown_one_is_harmless() -> None:
    timers = Timers()
    timers.arm("listen", 1, 100)
    timers.arm("listen", 2, 100)
    timers.cancel("listen", 1)
    timers.cancel("alarm", 99)
    assert timers.pop_due(1000) == [TimerFired("listen", 2)]


def test_re_arming_a_timer_replaces_its_deadline() -> None:
    timers = Timers()
    timers.arm("listen", 1, 100)
    timers.arm("listen", 1, 700)
    assert (timers.armed(), timers.next_due()) == (1, 700)
    assert timers.pop_due(699) == []
    assert timers.pop_due(700) == [TimerFired("listen", 1)]


def test_a_re_armed_timer_ties_in_the_order_it_was_last_armed() -> None:
    timers = Timers()
    timers.arm("listen", 1, 100)
    timers.arm("alarm", 1, 100)
    timers.arm("listen", 1, 100)  # armed again (the wake word heard again while listening), now the latest
    assert timers.pop_due(100) == [TimerFired("alarm", 1), TimerFired("listen", 1)]


# --------------------------------------------------------------------------------------------- capture ring


def samples(first: int, last: int) -> np.ndarray:
    """Audio whose value at each position is its absolute sample index: a slice shows where it came from."""
    return np.arange(first, last, dtype=np.int16)


def test_capture_history_slices_by_absolute_index_across_the_wrap() -> None:
    history = CaptureHistory(10)
    history.append(samples(0, 6))
    history.append(samples(6, 14))  # wraps: 10..13 overwrite 0..3
    assert history.slice(4, 14).tolist() == list(range(4, 14))
    assert history.slice(8, 12).tolist() == [8, 9, 10, 11]
    assert history.slice(12, 20).tolist() == [12, 13]  # the future is not there yet
    history.append(samples(14, 17))
    assert history.slice(7, 17).tolist() == list(range(7, 17))


def test_capture_history_clamps_a_slice_whose_start_was_overwritten() -> None:
    history = CaptureHistory(10)
    for start in range(0, 30, 3):
        history.append(samples(start, start + 3))
    assert history.slice(0, 25).tolist() == list(range(20, 25))
    assert history.slice(0, 100).tolist() == list(range(20, 30))
    assert history.slice(5, 15).tolist() == []
    assert history.slice(28, 28).tolist() == []


def test_capture_history_appending_exactly_its_capacity_keeps_it_all() -> None:
    history = CaptureHistory(10)
    history.append(samples(0, 3))
    history.append(samples(3, 13))
    assert history.slice(0, 13).tolist() == list(range(3, 13))


def test_capture_history_appending_more_than_its_capacity_keeps_the_latest_samples() -> None:
    history = CaptureHistory(10)
    history.append(samples(0, 14))
    assert history.slice(0, 14).tolist() == list(range(4, 14))


# ------------------------------------------------------------------------------------------------- hearing


def test_hearing_config_converts_the_settings_to_samples_once() -> None:
    """The default settings give the sample values hearing had before settings had one home."""
    assert hearing_config(Config()) == HearingConfig(
        wake_model="hey_jarvis",
        wake_threshold=0.5,
        wake_refractory_samples=16000,
        own_speech_window_samples=16000,
        endpointer=EndpointerConfig(
            on_threshold=0.5,
            off_threshold=0.35,
            hint_samples=512,
            start_samples=3200,
            end_silence_samples=11200,
            pause_samples=4800,
            onset_lookback_samples=8000,
        ),
        vad_reset_quiet_samples=16000,
        reference_window_samples=8000,
        user_hold_samples=4800,
        faint_wake_threshold=0.15,
    )
    custom = Config(wake=WakeConfig(custom_model_path=Path("/m/hey_spine_v0.1.onnx"), own_speech_window_s=0.5))
    assert (hearing_config(custom).wake_model, hearing_config(custom).own_speech_window_samples) == (
        "hey_spine_v0.1",
        8000,
    )


def hear_all(hearing: Hearing, signal: np.ndarray, start: int, periods: Iterator[int]) -> list[tuple[int, Event]]:
    """Feed `signal` in periods of the given sizes; each fact comes with the start of the period that revealed it."""
    facts: list[tuple[int, Event]] = []
    at = 0
    while at < len(signal):
        size = next(periods)
        facts += [(start + at, fact) for fact in hearing.hear(signal[at : at + size], start + at)]
        at += size
    return facts


def every(size: int) -> Iterator[int]:
    while True:
        yield size


def test_hearing_cuts_model_frames_at_fixed_sample_indices_whatever_the_period_size() -> None:
    vad, wake = RmsVoice(), PeakWake()
    hearing = Hearing(vad, wake, CONFIG)
    signal = ((np.arange(10 * FRAME) % 200) - 100).astype(np.int16)  # quiet: no facts

    def uneven() -> Iterator[int]:
        while True:
            yield from (160, 100, 333, 7)

    assert hear_all(hearing, signal, 48000, uneven()) == []
    assert vad.chunks == [signal[i : i + CHUNK].tolist() for i in range(0, len(signal) - CHUNK + 1, CHUNK)]
    assert wake.frames == [signal[i : i + FRAME].tolist() for i in range(0, len(signal), FRAME)]


@pytest.mark.parametrize(
    ("click_at", "detected_at"), [(FRAME - 1, FRAME), (FRAME, 2 * FRAME), (2 * FRAME - 1, 2 * FRAME)]
)
def test_a_wake_detection_is_stamped_with_the_end_of_its_frame(click_at: int, detected_at: int) -> None:
    signal = np.zeros(4 * FRAME, np.int16)
    signal[click_at] = 20000
    facts = hear_all(Hearing(RmsVoice(), PeakWake(), CONFIG), signal, 16000, every(160))
    assert facts == [(16000 + detected_at - 160, WakeDetected("hey_jarvis", 1.0, 16000 + detected_at))]


def test_the_wake_word_is_reported_once_then_again_only_after_the_refractory_period() -> None:
    wake = PeakWake()
    signal = np.zeros(30 * FRAME, np.int16)
    signal[np.arange(2, 25) * FRAME + 100] = 20000  # a click in every frame from frame 2 to frame 24
    facts = hear_all(Hearing(RmsVoice(), wake, CONFIG), signal, 0, every(160))
    # Frame 2 ends at 3 * FRAME; the refractory period is 10 frames, so frame 12 (ending at 13 * FRAME) is next.
    assert facts == [
        (3 * FRAME - 160, WakeDetected("hey_jarvis", 1.0, 3 * FRAME)),
        (13 * FRAME - 160, WakeDetected("hey_jarvis", 1.0, 13 * FRAME)),
        (23 * FRAME - 160, WakeDetected("hey_jarvis", 1.0, 23 * FRAME)),
    ]
    assert wake.resets == 3


def test_hearing_reports_an_utterance_at_chunk_boundaries() -> None:
    signal = np.zeros(8000, np.int16)
    signal[1100:4000] = 3000  # voice from inside chunk 2 to inside chunk 7
    facts = hear_all(Hearing(RmsVoice(), PeakWake(), CONFIG), signal, 0, every(160))
    # Chunk 2 [1024, 1536) is loud enough; 3 chunks later (at 2560) speech has started at 1024. Chunk 8
    # [4096, 4608) is the first silent one; 4 silent chunks later (at 6144, in the period [6080, 6240)) it has
    # ended at 4096. Two loud chunks make a hint first (its peak: chunk 3's 3000 / 4000).
    assert facts == [(1920, VoiceHint(1024, 0.75)), (2400, SpeechStarted(1024)), (6080, SpeechEnded(4096))]


def test_a_wake_detection_restarts_the_utterance_after_the_wake_word() -> None:
    signal = np.full(4000, 3000, np.int16)
    signal[1000] = 20000  # the wake word, in wake frame 0 [0, 1280), during continuous voice
    facts = hear_all(Hearing(RmsVoice(), PeakWake(), CONFIG), signal, 0, every(160))
    # Without the reset, speech would have started at 0 (reported at 1536); after it, the run begins with the
    # first chunk completed after the detection, chunk 2 [1024, 1536).
    assert facts == [
        (1024 - 64, VoiceHint(0, 0.781)),  # the voice under the wake word, before it was recognised
        (1280 - 160, WakeDetected("hey_jarvis", 1.0, 1280)),
        (2048 - 128, VoiceHint(1024, 0.75)),  # the reset also forgot the hint: a new run hints again
        (2560 - 160, SpeechStarted(1024)),
    ]


def test_the_vad_starts_afresh_after_a_second_of_quiet_and_never_within_speech() -> None:
    vad = RmsVoice()
    hearing = Hearing(vad, PeakWake(), replace(CONFIG, vad_reset_quiet_samples=16 * CHUNK))
    hear_all(hearing, np.zeros(40 * CHUNK, np.int16), 0, every(160))
    assert getattr(vad, "resets", 0) == 2  # after chunks 16 and 32 of quiet
    loud = np.full(40 * CHUNK, 3000, np.int16)  # 40 chunks of voice: an utterance, however long
    hear_all(hearing, loud, 40 * CHUNK, every(160))
    assert getattr(vad, "resets", 0) == 2
