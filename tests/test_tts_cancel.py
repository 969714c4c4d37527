"""A cancelled answer's synthesis stops mid-sentence on the wall-clock runner: the real Piper voice, the real
worker thread and watchdog (0.5 s deadline). Before, a sentence in progress ran to its end and, on a busy machine,
past the deadline: the real-stream hour reported 6 such leaks, all of them synthesis."""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import pytest

from device.core.events import Event, JobCancelled, TtsChunkReady
from device.engines.tts import PiperTts
from device.runtime.job_threads import ThreadRunner
from device.runtime.jobs import CANCEL_DEADLINE_S
from device.runtime.work import AudioStore, Costs, tts_job

pytestmark = pytest.mark.slow
RATE_HZ = 16000
STORY = " ".join(["Once upon a time a clockmaker lived at the edge of a great forest, and every day he went"] * 6)
COSTS = Costs(
    asr_fixed_samples=0, asr_rtf=0.0, tts_fixed_samples=0, tts_rtf=0.0, first_token_samples=0, token_samples=0
)


def test_a_cancelled_synthesis_job_is_acknowledged_in_time_and_never_leaks(models_dir: Path) -> None:
    tts = PiperTts(models_dir / "tts/en_US-joe-medium.onnx", models_dir / "tts/en_US-joe-medium.onnx.json")
    inbox: queue.SimpleQueue[Event] = queue.SimpleQueue()
    leaks: list[tuple[int, str, float]] = []
    runner = ThreadRunner(inbox.put, RATE_HZ, on_leak=lambda turn, kind, ms: leaks.append((turn, kind, ms)))
    tick = threading.Event()
    try:
        runner.start(tts_job(1, 0, STORY + ".", tts, AudioStore(), COSTS), 0)
        for _ in range(500):  # until the sentence is in ONNX Runtime (a real thread: this waits on it)
            if tts._stops.running():
                break
            tick.wait(0.01)
        assert tts._stops.running() == 1
        runner.cancel_turn(1, 0)
        assert inbox.get(timeout=5) == JobCancelled(1, "tts")  # no chunk of the cancelled sentence came first
        tick.wait(CANCEL_DEADLINE_S * 2)  # the watchdog's deadline passes: nothing may be reported leaked
        assert leaks == [] and runner.leaks == 0
        runner.start(tts_job(2, 0, "Hello there.", tts, AudioStore(), COSTS), 0)  # the same worker speaks again
        answer = inbox.get(timeout=10)
        assert isinstance(answer, TtsChunkReady) and answer.turn == 2 and answer.samples > 0
    finally:
        runner.stop()
