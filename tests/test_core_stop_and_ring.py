"""Stop phrases that always stop, a finished timer that rings until it is stopped, and the start-up sound."""

from __future__ import annotations

from dataclasses import replace

import pytest

from device.core import commands as cmd
from device.core import events as ev
from device.core.memory import is_stop_phrase
from device.core.states import (
    DEFAULT_STOP_PHRASES,
    Alarm,
    Announcing,
    Hearing,
    Idle,
    Listening,
    Muted,
    Ring,
    Ringing,
    Spine,
    Stopping,
    Thinking,
    initial,
)
from device.core.voice import SELF_HEARD
from tests.core_script import CONFIG, Driver, chunk

STOPS = [
    "Hey Jarvis, stop.",
    "Hey, Jarvis. Stop!",
    "Jarvis, stop",
    "Hey Jervis, stop.",  # whisper misspells the name
    "Stop. Stop.",
    "Stop, stop, stop!",
    "Stop it please",
    "Never mind.",
    "Cancel that",
    "Okay, that's enough.",
    "Be quiet!",
    "Stop the timer.",  # while it rings, this is what people say; it never asks for an answer
    "No, stop talking.",
    "Top.",  # whisper's reading of "Stop." over loud echo (scripts/make_command_corpus.py: 2 of 3 cases)
    "Quit it!",
]
REQUESTS = [
    "what time is it",
    "Hey Jarvis, what time is it?",
    "Don't stop.",
    "Tell me a story and never stop.",
    "How do I stop a timer?",
    "Stop by the shop tomorrow",
    "Hey Jarvis.",  # the wake word alone: nothing to stop, nothing asked (the empty remainder is not a stop)
    "topic.",  # what whisper made of a "stop" drowned in echo: not a stop by text alone
    "Top of the list, please.",
    "Step by step.",
    "Council meeting times",
    "Quite good.",
]


@pytest.mark.parametrize("text", STOPS)
def test_stop_phrases_are_stops(text: str) -> None:
    assert is_stop_phrase(text, DEFAULT_STOP_PHRASES, "hey jarvis")


@pytest.mark.parametrize("text", REQUESTS)
def test_requests_are_never_stops(text: str) -> None:
    assert not is_stop_phrase(text, DEFAULT_STOP_PHRASES, "hey jarvis")


def test_the_wake_phrase_is_configurable() -> None:
    assert is_stop_phrase("OK, computer. Stop!", DEFAULT_STOP_PHRASES, "ok computer")
    assert is_stop_phrase("Computer, cancel.", DEFAULT_STOP_PHRASES, "ok computer")
    assert not is_stop_phrase("Computer, what time is it?", DEFAULT_STOP_PHRASES, "ok computer")


def reply_heard(d: Driver) -> int:
    """A short answer heard to its end: returns the follow-up window's turn (its epoch drained at 70,000)."""
    d.feed(ev.WakeDetected("hey_jarvis", 0.9, 0), 0)
    d.feed(ev.SpeechStarted(4000), 8000)
    d.feed(ev.SpeechEnded(30000), 40000)
    d.feed(ev.TranscriptReady(1, "what time is it", 30000), 45000)
    d.feed(ev.ReplyDelta(1, "It is late."), 50000)
    d.feed(ev.ReplyFinished(1), 50001)
    d.feed(chunk(1, 0, "It is late."), 52000)
    d.feed(ev.PlaybackDrained(1, 3000), 70000)
    assert isinstance(d.spine.state, Listening) and d.spine.state.follow_up
    return d.spine.state.turn


@pytest.mark.parametrize("text", STOPS)
def test_a_stop_in_the_follow_up_window_is_never_answered(text: str) -> None:
    d = Driver()
    turn = reply_heard(d)
    d.feed(ev.SpeechStarted(72000), 75000)  # right after the drain: the echo tail, but the words are not its own
    d.feed(ev.SpeechEnded(90000), 100000)
    out = d.feed(ev.TranscriptReady(turn, text, 90000), 104000)
    assert out == (cmd.CancelTimer("asr", turn), cmd.NoteIgnored(f"stop phrase {text!r}: stopped, nothing to answer"))
    assert d.spine.state == Idle()


@pytest.mark.parametrize("text", REQUESTS[:2])
def test_a_request_in_the_follow_up_window_is_answered(text: str) -> None:
    d = Driver()
    turn = reply_heard(d)
    d.feed(ev.SpeechStarted(72000), 75000)
    d.feed(ev.SpeechEnded(90000), 100000)
    out = d.feed(ev.TranscriptReady(turn, text, 90000), 104000)
    assert out == (cmd.CancelTimer("asr", turn), cmd.StartReply(turn, text, d.spine.context.memory[:-1]))


# ------------------------------------------------------------------------------------- a timer that rings

LINE = "Your tea timer is done."
GAP = CONFIG.alarm_ring_gap_samples


def ringing(d: Driver, at: int = 1000) -> None:
    """The tea timer (alarm 1) is done at `at` in Idle: its line is synthesised and plays out 6,000 later."""
    d.spine = replace(d.spine, context=replace(d.spine.context, alarms_armed=(Alarm(1, "tea"), Alarm(2, "egg"))))
    d.feed(ev.TimerFired("alarm", 1), at)
    say_line(d, at)


def say_line(d: Driver, at: int) -> None:
    state = d.spine.state
    assert isinstance(state, Announcing) and state.text == LINE
    d.feed(chunk(state.turn, 0, LINE), at + 1000)


def test_a_finished_timer_rings_with_gaps_until_its_bound() -> None:
    d = Driver()
    ringing(d, 1000)
    assert d.spine.context.ring == Ring(Alarm(1, "tea"), 1000)
    sayings = [1000]
    while True:
        state = d.spine.state
        assert isinstance(state, Announcing)
        out = d.feed(ev.PlaybackDrained(state.epoch, 5000), sayings[-1] + 7000)
        if not isinstance(d.spine.state, Ringing):
            break
        assert out == (cmd.StartTimer("ring", 1, sayings[-1] + 7000 + GAP),)
        due = sayings[-1] + 7000 + GAP
        out = d.feed(ev.TimerFired("ring", 1), due)
        turn = state.turn + 1
        assert out == (
            cmd.OpenPlayback(state.epoch + 1, turn),
            cmd.StartTts(turn, 0, LINE),
            cmd.StartTimer("tts", turn, due + CONFIG.tts_timeout_samples),
        )
        sayings.append(due)
        say_line(d, due)
    # Every saying began within the bound; the next would not have, so it rests.
    assert d.spine.state == Idle() and d.spine.context.ring is None
    assert all(t - 1000 < CONFIG.alarm_ring_max_samples for t in sayings)
    assert sayings[-1] + 7000 + GAP - 1000 >= CONFIG.alarm_ring_max_samples
    assert len(sayings) == 25  # a minute of "Your tea timer is done.": each saying 7,000 samples, then the gap


def gap(d: Driver) -> int:
    """Ring, and let the first saying play out at 8,000: returns when the gap began."""
    ringing(d, 1000)
    d.feed(ev.PlaybackDrained(1, 5000), 8000)
    assert d.spine.state == Ringing()
    return 8000


def test_the_wake_word_silences_a_ring_in_its_gap() -> None:
    d = Driver()
    gap(d)
    out = d.feed(ev.WakeDetected("hey_jarvis", 0.9, 12000), 12000)
    assert out == (cmd.CancelTimer("ring", 1), cmd.StartTimer("listen", 2, 12000 + CONFIG.listen_timeout_samples))
    assert d.spine.state == Listening(2, 12000, addressed=True) and d.spine.context.ring is None
    d.feed(ev.TimerFired("listen", 2), 12000 + CONFIG.listen_timeout_samples)
    assert isinstance(d.spine.state, Idle)  # not ringing again


def test_a_stop_without_the_wake_word_silences_a_ring_in_its_gap() -> None:
    d = Driver()
    gap(d)
    out = d.feed(ev.SpeechStarted(20000), 21000)
    assert d.spine.state == Hearing(2, 20000, 20000 - CONFIG.preroll_samples)
    assert out == (cmd.CancelTimer("ring", 1), cmd.StartTimer("utterance", 2, 21000 + CONFIG.max_utterance_samples))
    d.feed(ev.SpeechEnded(30000), 40000)
    d.feed(ev.TranscriptReady(2, "Stop it please.", 30000), 44000)
    assert isinstance(d.spine.state, Idle) and d.spine.context.ring is None


def test_its_own_echo_or_a_noise_in_the_gap_does_not_stop_the_ring() -> None:
    d = Driver()
    drained = gap(d)
    d.feed(ev.SpeechStarted(drained + 500), drained + 2000)  # the echo of "... is done." after the drain
    d.feed(ev.SpeechEnded(drained + 12000), drained + 22000)
    out = d.feed(ev.TranscriptReady(2, "timer is done", drained + 12000), drained + 26000)
    assert len(out) == 3 and out[0] == cmd.CancelTimer("asr", 2)
    assert isinstance(out[1], cmd.NoteIgnored) and out[1].reason.startswith(SELF_HEARD)
    assert out[2] == cmd.StartTimer("ring", 1, drained + 26000 + GAP)
    assert d.spine.state == Ringing() and d.spine.context.ring == Ring(Alarm(1, "tea"), 1000)
    # A cough later: transcribed as nothing, the ring goes on too.
    d.feed(ev.SpeechStarted(60000), 61000)
    d.feed(ev.SpeechEnded(66000), 76000)
    out = d.feed(ev.TranscriptReady(3, "", 66000), 78000)
    empty = cmd.NoteIgnored("empty transcript: nothing to answer")
    assert out == (cmd.CancelTimer("asr", 3), empty, cmd.StartTimer("ring", 1, 78000 + GAP))


def test_a_stop_that_cuts_the_line_silences_the_ring() -> None:
    d = Driver()
    ringing(d, 1000)
    d.feed(ev.VoiceHint(4000, 0.9), 4100)
    d.feed(ev.SpeechStarted(4000), 5000)
    assert isinstance(d.spine.state, Hearing)
    d.feed(ev.PlaybackStopped(1, 3000), 5200)
    d.feed(ev.SpeechEnded(14000), 24000)
    out = d.feed(ev.TranscriptReady(2, "Hey Jarvis, stop the timer!", 14000), 28000)
    stopped = cmd.NoteIgnored("stop phrase 'Hey Jarvis, stop the timer!': stopped, nothing to answer")
    assert out == (cmd.CancelTimer("asr", 2), stopped)
    assert isinstance(d.spine.state, Idle) and d.spine.context.ring is None


def test_a_request_over_the_ring_silences_it_and_is_answered() -> None:
    d = Driver()
    gap(d)
    d.feed(ev.SpeechStarted(20000), 21000)
    d.feed(ev.SpeechEnded(40000), 50000)
    out = d.feed(ev.TranscriptReady(2, "What time is it?", 40000), 54000)
    assert out == (cmd.CancelTimer("asr", 2), cmd.StartReply(2, "What time is it?", ()))
    assert isinstance(d.spine.state, Thinking) and d.spine.context.ring is None


def test_another_timer_done_while_one_rings_waits_and_rings_after_it() -> None:
    d = Driver()
    gap(d)
    assert d.feed(ev.TimerFired("alarm", 2), 9000) == ()
    assert d.spine.context.alarms_due == (Alarm(2, "egg"),)
    d.feed(ev.SpeechStarted(20000), 21000)
    d.feed(ev.SpeechEnded(30000), 40000)
    d.feed(ev.TranscriptReady(2, "stop", 30000), 44000)
    state = d.spine.state
    assert isinstance(state, Announcing) and state.text == "Your egg timer is done."
    assert d.spine.context.ring == Ring(Alarm(2, "egg"), 44000)


def test_mute_silences_a_ring_and_a_failed_voice_ends_it() -> None:
    d = Driver()
    gap(d)
    out = d.feed(ev.MuteChanged(True, "button"), 9000)
    assert out == (cmd.CancelTimer("ring", 1), cmd.SetMicrophone(False))
    assert d.spine.state == Muted() and d.spine.context.ring is None
    d = Driver()
    ringing(d, 1000)
    d.feed(ev.EngineFailed(1, "tts", "voice model broken"), 2000)
    assert d.spine.state == Idle() and d.spine.context.ring is None


def test_a_stale_ring_timer_is_dropped() -> None:
    d = Driver()
    gap(d)
    assert d.feed(ev.TimerFired("ring", 7), 9000) == (
        cmd.NoteIgnored("ring timer 7 is stale: that timer no longer rings"),
    )
    d.feed(ev.WakeDetected("hey_jarvis", 0.9, 10000), 10000)
    assert d.feed(ev.TimerFired("ring", 1), 40000) == (cmd.NoteIgnored("ring timer 1 has no meaning in Listening"),)


# ----------------------------------------------------------------------------------------- start-up sound


def test_the_start_up_sound_plays_once_when_the_loop_begins_and_only_a_stop_cuts_it() -> None:
    d = Driver()
    assert d.feed(ev.Started(), 0) == (cmd.PlayEarcon(1, "startup"),)
    assert d.spine.context.startup_epoch == 1 and d.spine.context.memory == ()
    # The wake word while it plays: the chime is its own epoch; the start-up sound plays on (not cut).
    chiming = Driver(Spine(d.spine.state, replace(d.spine.context, config=replace(CONFIG, earcons=True))))
    out = chiming.feed(ev.WakeDetected("hey_jarvis", 0.9, 4000), 4000)
    assert cmd.PlayEarcon(2, "wake") in out and not any(isinstance(c, cmd.CutPlayback) for c in out)
    assert chiming.feed(ev.Started(), 5000) == (
        cmd.NoteIgnored("the loop starts once, in Idle, before any other event"),
    )
    assert chiming.feed(ev.PlaybackDrained(1, 24000), 24000) == (
        cmd.NoteIgnored("the start-up sound played to its end"),
    )
    assert chiming.spine.context.startup_epoch == 0
    # A stop while it still plays cuts it.
    out = d.feed(ev.StopRequested("signal"), 8000)
    assert out == (cmd.CutPlayback(1),) and d.spine.state == Stopping()


def test_the_start_up_sound_can_be_off() -> None:
    d = Driver(initial(replace(CONFIG, startup_sound=False)))
    assert d.feed(ev.Started(), 0) == (cmd.NoteIgnored("the start-up sound is off"),)
    assert d.spine.context.startup_epoch == 0
