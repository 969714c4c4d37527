"""The runtime's small parts, each fed explicit sample times: timers, capture history, hearing, job runners.

No clock is read and nothing sleeps. The thread runner's tests block on a real queue with a timeout: they run
real worker threads, and a missing event must fail the test rather than hang it.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from device.config import Config, WakeConfig
from device.core.events import (
    EngineFailed,
    Event,
    JobCancelled,
    JobKind,
    ReplyDelta,
    ReplyFinished,
    SpeechEnded,
    SpeechStarted,
    TimerFired,
    TranscriptReady,
    TtsChunkReady,
    VoiceHint,
    WakeDetected,
)
from device.runtime.capture import CaptureHistory
from device.runtime.endpointer import EndpointerConfig
from device.runtime.hearing import Hearing, HearingConfig, hearing_config
from device.runtime.jobs import Job, Output, ThreadRunner, VirtualRunner
from device.runtime.timers import Timers

RATE_HZ = 16000

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

CHUNK = 512  # Silero's chunk
FRAME = 1280  # openWakeWord's frame

CONFIG = HearingConfig(
    wake_model="hey_jarvis",
    wake_threshold=0.5,
    wake_refractory_samples=10 * FRAME,
    own_speech_window_samples=16000,
    endpointer=EndpointerConfig(
        on_threshold=0.5,
        off_threshold=0.35,
        hint_samples=2 * CHUNK,
        start_samples=3 * CHUNK,
        end_silence_samples=4 * CHUNK,
        pause_samples=4800,
        onset_lookback_samples=8000,
    ),
    vad_reset_quiet_samples=16000,
    reference_window_samples=8000,
    user_hold_samples=4800,
)


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
    )
    custom = Config(wake=WakeConfig(custom_model_path=Path("/m/hey_spine_v0.1.onnx"), own_speech_window_s=0.5))
    assert (hearing_config(custom).wake_model, hearing_config(custom).own_speech_window_samples) == (
        "hey_spine_v0.1",
        8000,
    )


class RmsVoice:
    """A real, if simple, VAD: voice probability from the chunk's RMS level (energy detection).

    It is not a stand-in for Silero's behaviour; it implements the same protocol so Hearing's framing and its
    wiring to the endpointer can be checked with signals whose answer is known. It keeps the chunks it saw.
    """

    CHUNK_SAMPLES = CHUNK

    def __init__(self) -> None:
        self.chunks: list[list[int]] = []

    def probability(self, chunk: np.ndarray) -> float:
        self.chunks.append(chunk.tolist())
        return min(1.0, math.sqrt(float(np.mean(chunk.astype(np.float64) ** 2))) / 4000.0)

    def reset(self) -> None:
        self.resets = getattr(self, "resets", 0) + 1


class PeakWake:
    """A real, if simple, detector: the score is the frame's peak amplitude (a loud click "wakes" it)."""

    FRAME_SAMPLES = FRAME

    def __init__(self) -> None:
        self.frames: list[list[int]] = []
        self.resets = 0

    def score(self, frame: np.ndarray) -> float:
        self.frames.append(frame.tolist())
        return min(1.0, float(np.max(np.abs(frame.astype(np.int32)))) / 20000.0)

    def reset(self) -> None:
        self.resets += 1


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


# ----------------------------------------------------------------------------------------- virtual runner


def job(turn: int, kind: JobKind, outputs: list[Output]) -> Job:
    def run() -> Generator[Output, None, None]:
        yield from outputs

    return Job(turn, kind, run)


def test_virtual_outputs_are_due_at_start_plus_cumulative_cost() -> None:
    runner = VirtualRunner(ack_samples=160)
    outputs = [Output(ReplyDelta(1, "It "), 640), Output(ReplyDelta(1, "is "), 320), Output(ReplyFinished(1), 0)]
    runner.start(job(1, "reply", outputs), 16000)
    assert (runner.next_due(), runner.jobs_started) == (16640, 1)
    assert runner.pop_due(16639) == []
    assert runner.pop_due(16640) == [ReplyDelta(1, "It ")]
    assert runner.pop_due(16959) == []
    assert runner.pop_due(16960) == [ReplyDelta(1, "is "), ReplyFinished(1)]
    assert (runner.idle(), runner.next_due()) == (True, None)


def test_virtual_jobs_of_one_kind_run_one_after_another() -> None:
    runner = VirtualRunner(ack_samples=160)
    runner.start(job(1, "asr", [Output(TranscriptReady(1, "one", 0), 800)]), 1000)
    runner.start(job(2, "asr", [Output(TranscriptReady(2, "two", 0), 300)]), 1200)  # waits for the first: 1800
    runner.start(job(2, "tts", [Output(TtsChunkReady(2, 0, "Hi.", 10, (10,)), 100)]), 1200)  # its own worker
    runner.start(job(3, "asr", [Output(TranscriptReady(3, "three", 0), 50)]), 5000)  # the worker is free by then
    due = [(t, runner.pop_due(t)) for t in (1299, 1300, 1799, 1800, 2099, 2100, 5049, 5050)]
    assert due == [
        (1299, []),
        (1300, [TtsChunkReady(2, 0, "Hi.", 10, (10,))]),
        (1799, []),
        (1800, [TranscriptReady(1, "one", 0)]),
        (2099, []),
        (2100, [TranscriptReady(2, "two", 0)]),
        (5049, []),
        (5050, [TranscriptReady(3, "three", 0)]),
    ]


def test_virtual_cancel_drops_the_turns_outputs_and_acks_once_per_kind() -> None:
    runner = VirtualRunner(ack_samples=160)
    reply = [Output(ReplyDelta(1, w), 320) for w in ("Once ", "upon ", "a ")]
    runner.start(job(1, "reply", reply), 0)  # due 320, 640, 960
    runner.start(job(1, "tts", [Output(TtsChunkReady(1, 0, "Once.", 10, (10,)), 1000)]), 0)
    runner.start(job(1, "asr", [Output(TranscriptReady(1, "done", 0), 100)]), 0)
    runner.start(job(2, "asr", [Output(TranscriptReady(2, "other turn", 0), 400)]), 0)  # due 500
    assert runner.pop_due(320) == [TranscriptReady(1, "done", 0), ReplyDelta(1, "Once ")]
    runner.cancel_turn(1, 400)
    # The cancelled reply worker is free at once: a new reply job starts at 400, not after 960.
    runner.start(job(3, "reply", [Output(ReplyFinished(3), 100)]), 400)
    assert runner.pop_due(10_000) == [
        TranscriptReady(2, "other turn", 0),
        ReplyFinished(3),
        JobCancelled(1, "reply"),  # one per kind with pending outputs, at now + ack; asr had none left
        JobCancelled(1, "tts"),
    ]
    runner.cancel_turn(1, 20_000)  # nothing of turn 1 pending: nothing to acknowledge
    runner.cancel_turn(2, 20_000)
    assert runner.idle()


def test_virtual_ack_time_is_now_plus_ack_samples() -> None:
    runner = VirtualRunner(ack_samples=160)
    runner.start(job(1, "tts", [Output(TtsChunkReady(1, 0, "Hi.", 10, (10,)), 1000)]), 0)
    runner.cancel_turn(1, 400)
    assert (runner.next_due(), runner.pop_due(559), runner.pop_due(560)) == (560, [], [JobCancelled(1, "tts")])


def test_virtual_an_exception_in_a_job_becomes_engine_failed() -> None:
    def failing() -> Generator[Output, None, None]:
        yield Output(ReplyDelta(1, "It "), 100)
        raise RuntimeError("backend closed the stream")

    runner = VirtualRunner(ack_samples=160)
    runner.start(Job(1, "reply", failing), 0)
    runner.start(job(2, "reply", [Output(ReplyFinished(2), 50)]), 0)  # the worker is free when the job failed
    assert runner.pop_due(150) == [
        ReplyDelta(1, "It "),
        EngineFailed(1, "reply", "RuntimeError: backend closed the stream"),
        ReplyFinished(2),
    ]


# ------------------------------------------------------------------------------------------ thread runner

TIMEOUT_S = 5.0


def thread_runner() -> tuple[ThreadRunner, queue.SimpleQueue[Event]]:
    inbox: queue.SimpleQueue[Event] = queue.SimpleQueue()
    return ThreadRunner(inbox.put, RATE_HZ), inbox


def test_threaded_job_outputs_arrive_in_order_and_a_finished_job_acks_nothing() -> None:
    runner, inbox = thread_runner()
    try:
        words = ["Once ", "upon ", "a ", "time."]
        runner.start(job(1, "reply", [Output(ReplyDelta(1, w), 320) for w in words]), 0)
        runner.start(job(1, "reply", [Output(ReplyFinished(1), 0)]), 0)  # the same worker, after the first
        arrived = [inbox.get(timeout=TIMEOUT_S) for _ in range(5)]
        assert arrived == [*(ReplyDelta(1, w) for w in words), ReplyFinished(1)]
    finally:
        runner.stop()


def test_threaded_exception_in_a_job_becomes_engine_failed() -> None:
    def failing() -> Generator[Output, None, None]:
        yield Output(TranscriptReady(1, "half", 0), 0)
        raise ValueError("model returned garbage")

    runner, inbox = thread_runner()
    try:
        runner.start(Job(1, "asr", failing), 0)
        arrived = [inbox.get(timeout=TIMEOUT_S) for _ in range(2)]
        assert arrived == [TranscriptReady(1, "half", 0), EngineFailed(1, "asr", "ValueError: model returned garbage")]
    finally:
        runner.stop()


def paced_job(turn: int, closed: threading.Event, before_pace: Callable[[], None]) -> Job:
    """A streaming reply: one word at once, then a word paced an hour later (it must never come)."""

    def run() -> Generator[Output, None, None]:
        try:
            yield Output(ReplyDelta(turn, "Once "), 0)
            before_pace()
            yield Output(ReplyDelta(turn, "upon "), 3600 * RATE_HZ, pace=True)
            yield Output(ReplyFinished(turn), 0)
        finally:
            closed.set()

    return Job(turn, "reply", run)


def test_threaded_cancel_of_a_paced_job_acks_promptly_and_closes_the_generator() -> None:
    runner, inbox = thread_runner()
    closed, at_pace = threading.Event(), threading.Event()
    try:
        runner.start(paced_job(1, closed, at_pace.set), 0)
        assert inbox.get(timeout=TIMEOUT_S) == ReplyDelta(1, "Once ")
        # The worker is now (or within a few bytecodes) waiting out the paced word's hour.
        assert at_pace.wait(TIMEOUT_S)
        runner.cancel_turn(1, 0)
        assert inbox.get(timeout=TIMEOUT_S) == JobCancelled(1, "reply")
        assert closed.is_set()  # the generator was closed before the ack was posted
        runner.start(job(2, "reply", [Output(ReplyFinished(2), 0)]), 0)  # the worker is free again
        assert inbox.get(timeout=TIMEOUT_S) == ReplyFinished(2)
    finally:
        runner.stop()


def test_threaded_cancel_of_a_queued_job_acks_without_running_it() -> None:
    runner, inbox = thread_runner()
    first_closed, second_closed, release = threading.Event(), threading.Event(), threading.Event()

    def busy() -> Generator[Output, None, None]:
        try:
            yield Output(ReplyDelta(1, "Once "), 0)
            release.wait(TIMEOUT_S)  # computing the next word while the FSM cancels both turns
            yield Output(ReplyDelta(1, "upon "), 0)
        finally:
            first_closed.set()

    try:
        runner.start(Job(1, "reply", busy), 0)
        assert inbox.get(timeout=TIMEOUT_S) == ReplyDelta(1, "Once ")
        runner.start(paced_job(2, second_closed, lambda: None), 0)  # queued behind turn 1 on the reply worker
        runner.cancel_turn(2, 0)
        runner.cancel_turn(1, 0)
        release.set()
        arrived = [inbox.get(timeout=TIMEOUT_S) for _ in range(2)]
        assert arrived == [JobCancelled(1, "reply"), JobCancelled(2, "reply")]  # "upon " was computed, not posted
        assert (first_closed.is_set(), second_closed.is_set()) == (True, False)  # turn 2's job never started
    finally:
        runner.stop()


def test_threaded_cancel_while_the_job_computes_its_next_paced_output_acks_promptly() -> None:
    runner, inbox = thread_runner()
    closed, cancelled = threading.Event(), threading.Event()

    def cancel_now() -> None:
        # Runs on the worker thread inside the generator, i.e. between two outputs: the FSM cancels right then.
        runner.cancel_turn(1, 0)
        cancelled.set()

    try:
        runner.start(paced_job(1, closed, cancel_now), 0)
        assert inbox.get(timeout=TIMEOUT_S) == ReplyDelta(1, "Once ")
        assert cancelled.wait(TIMEOUT_S)
        # Prompt means milliseconds; 2 s keeps the (expected, until fixed) failure from slowing the suite.
        assert inbox.get(timeout=2.0) == JobCancelled(1, "reply")
    finally:
        runner.stop()


def test_the_vad_starts_afresh_after_a_second_of_quiet_and_never_within_speech() -> None:
    vad = RmsVoice()
    hearing = Hearing(vad, PeakWake(), replace(CONFIG, vad_reset_quiet_samples=16 * CHUNK))
    hear_all(hearing, np.zeros(40 * CHUNK, np.int16), 0, every(160))
    assert getattr(vad, "resets", 0) == 2  # after chunks 16 and 32 of quiet
    loud = np.full(40 * CHUNK, 3000, np.int16)  # 40 chunks of voice: an utterance, however long
    hear_all(hearing, loud, 40 * CHUNK, every(160))
    assert getattr(vad, "resets", 0) == 2
