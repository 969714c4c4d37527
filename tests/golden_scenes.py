"""Golden event logs of the hard cases, written by stepping the real core (`python -m tests.golden_scenes`).

Each case is a list of (time in samples, event). The golden file is what `EventLog` wrote for it; the test
regenerates it and compares bytes, so any change in a decision shows up as a diff to review.
"""

from __future__ import annotations

from pathlib import Path

from device.core import events as ev
from device.core.machine import step
from device.core.states import initial
from device.runtime.eventlog import EventLog
from tests.core_script import CONFIG, chunk

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
Case = list[tuple[int, ev.Event]]


def _ask(turn: int, at: int, text: str, *, early: bool = False) -> Case:
    """Wake, speak, end. `early`: the pause before the end is transcribed at once and is ready at the end."""
    if early:
        return [
            (at, ev.WakeDetected("hey_jarvis", 0.97, at)),
            (at + 6400, ev.SpeechStarted(at + 3200)),
            (at + 25600, ev.SpeechPaused(at + 20800)),
            (at + 30400, ev.TranscriptReady(turn, text, at + 20800)),
            (at + 32000, ev.SpeechEnded(at + 20800)),
        ]
    return [
        (at, ev.WakeDetected("hey_jarvis", 0.97, at)),
        (at + 6400, ev.SpeechStarted(at + 3200)),
        (at + 32000, ev.SpeechEnded(at + 20800)),
        (at + 36000, ev.TranscriptReady(turn, text, at + 20800)),
    ]


def barge_in_mid_sentence_with_late_results() -> Case:
    """Wake word mid-sentence; the old turn's next sentence and its stream end arrive after the cancel.
    Both requests are transcribed early: the first is ready at its end; the second paused, spoke on (its
    first early transcript is outdated), paused again, and the endpoint waits for that transcription."""
    return [
        *_ask(1, 16000, "tell me a story", early=True),
        (52800, ev.ReplyDelta(1, "Once upon a time there was a clockmaker. ")),
        (53000, ev.ReplyDelta(1, "She wound every clock. ")),
        (54400, chunk(1, 0, "Once upon a time there was a clockmaker.")),
        (56000, chunk(1, 1, "She wound every clock.")),
        (60160, ev.WakeDetected("hey_jarvis", 0.95, 60160)),
        (60320, ev.PlaybackStopped(1, 5740)),
        (60400, ev.JobCancelled(1, "tts")),
        (60480, ev.ReplyFinished(1)),
        (61000, chunk(1, 2, "The end.")),
        (64000, ev.SpeechStarted(62000)),
        (74800, ev.SpeechPaused(70000)),
        (84800, ev.SpeechPaused(80000)),
        (86000, ev.TranscriptReady(2, "what", 70000)),
        (90000, ev.SpeechEnded(80000)),
        (92000, ev.TranscriptReady(2, "what time is it", 80000)),
        (92800, ev.ReplyDelta(2, "It's 9:41 AM.")),
        (92900, ev.ReplyFinished(2)),
        (94000, chunk(2, 0, "It's 9:41 AM.")),
        (100000, ev.PlaybackDrained(2, 4000)),
        (180000, ev.TimerFired("listen", 3)),  # the follow-up window closes unused
    ]


def speech_barge_in_before_first_audio_is_queued() -> Case:
    """The user speaks while the reply is still being thought: ignored; then interrupts the first sentence."""
    return [
        *_ask(1, 0, "tell me a story"),
        (37000, ev.SpeechStarted(36500)),
        (37500, ev.ReplyDelta(1, "Once upon a time. ")),
        (39000, chunk(1, 0, "Once upon a time.")),
        (41000, ev.SpeechStarted(40800)),
        (41160, ev.PlaybackStopped(1, 2100)),
        (70000, ev.SpeechEnded(60000)),
        (75000, ev.TranscriptReady(2, "", 60000)),
    ]


def alarm_rings_during_an_answer() -> Case:
    """A timer rings while the assistant talks: announced after it finishes; the wake word ends the ring."""
    return [
        *_ask(1, 0, "set a timer for 1 second"),
        (36100, ev.AlarmRequested(1, 1, "1 second")),
        (36200, ev.ReplyDelta(1, "Okay, a 1 second timer, starting now.")),
        (36300, ev.ReplyFinished(1)),
        (38000, chunk(1, 0, "Okay, a 1 second timer, starting now.")),
        (52100, ev.TimerFired("alarm", 1)),
        (60000, ev.PlaybackDrained(1, 7000)),
        (62000, chunk(2, 0, "Your 1 second timer is done.")),
        (64000, ev.WakeDetected("hey_jarvis", 0.91, 64000)),
        (64160, ev.PlaybackStopped(1, 1500)),
        (64200, ev.TimerFired("listen", 3)),
        (64000 + CONFIG.listen_timeout_samples, ev.TimerFired("listen", 3)),
    ]


def failures_and_timeouts() -> Case:
    """Nobody speaks after the wake word; then the reply engine fails mid-answer; then a stop."""
    return [
        (0, ev.WakeDetected("hey_jarvis", 0.88, 0)),
        (CONFIG.listen_timeout_samples, ev.TimerFired("listen", 1)),
        *_ask(2, 200000, "hello"),
        (240000, ev.ReplyDelta(2, "I heard ")),
        (241000, ev.EngineFailed(2, "reply", "ConnectionError: reset")),
        (242000, ev.ReplyDelta(2, "hello. ")),
        (250000, ev.StopRequested("signal")),
        (250100, ev.WakeDetected("hey_jarvis", 0.9, 250100)),
    ]


CASES = {
    "barge_in_mid_sentence": barge_in_mid_sentence_with_late_results,
    "speech_barge_in": speech_barge_in_before_first_audio_is_queued,
    "alarm_during_answer": alarm_rings_during_an_answer,
    "failures_and_timeouts": failures_and_timeouts,
}


def write_case(name: str, path: Path) -> None:
    log = EventLog(path, CONFIG)
    spine = initial(CONFIG)
    for now, event in CASES[name]():
        log.event(now, event)
        spine, commands = step(spine, event, now)
        log.outcome(now, type(spine.state).__name__, commands)
    log.close()


if __name__ == "__main__":
    GOLDEN_DIR.mkdir(exist_ok=True)
    for case in CASES:
        write_case(case, GOLDEN_DIR / f"{case}.jsonl")
        print(f"wrote {GOLDEN_DIR / case}.jsonl")
