"""Earcons in the core: when the machine chimes, and that a chime never touches a reply's epoch or memory."""

from __future__ import annotations

from dataclasses import replace

from device.core import commands as cmd
from device.core import events as ev
from device.core.states import Idle, Listening, Muted, Speaking, initial
from tests.core_script import CONFIG, Driver, chunk

CHIMING = replace(CONFIG, earcons=True)


def chiming() -> Driver:
    return Driver(initial(CHIMING))


def earcons(out: tuple[cmd.Command, ...]) -> list[cmd.PlayEarcon]:
    return [c for c in out if isinstance(c, cmd.PlayEarcon)]


def test_the_wake_word_chimes_in_an_epoch_of_its_own() -> None:
    d = chiming()
    out = d.feed(ev.WakeDetected("hey_jarvis", 0.9, 16000), 16000)
    assert out == (cmd.PlayEarcon(1, "wake"), cmd.StartTimer("listen", 1, 16000 + CHIMING.listen_timeout_samples))
    assert d.feed(ev.PlaybackDrained(1, 2720), 19000) == (cmd.NoteIgnored("earcon epoch 1 played to its end"),)
    # The user talks on; the reply that follows opens a new epoch, never the chime's.
    d.feed(ev.SpeechStarted(20000), 24000)
    d.feed(ev.SpeechEnded(40000), 50000)
    d.feed(ev.TranscriptReady(1, "what time is it", 40000), 55000)
    d.feed(ev.ReplyDelta(1, "It is late."), 56000)
    out = d.feed(chunk(1, 0, "It is late."), 57000)
    assert cmd.OpenPlayback(2, 1) in out
    # The chime is not part of the conversation.
    assert [m.role for m in d.spine.context.memory] == ["user"]


def test_a_wake_word_window_that_closes_unused_chimes_and_a_follow_up_window_does_not() -> None:
    d = chiming()
    d.feed(ev.WakeDetected("hey_jarvis", 0.9, 0), 0)
    out = d.feed(ev.TimerFired("listen", 1), CHIMING.listen_timeout_samples)
    assert isinstance(d.spine.state, Idle) and earcons(out) == [cmd.PlayEarcon(2, "timeout")]

    # A reply heard to its end opens a follow-up window; it lapses quietly.
    d.feed(ev.WakeDetected("hey_jarvis", 0.9, 200000), 200000)
    d.feed(ev.SpeechStarted(204000), 208000)
    d.feed(ev.SpeechEnded(230000), 240000)
    d.feed(ev.TranscriptReady(2, "hi", 230000), 245000)
    d.feed(ev.ReplyDelta(2, "Hello."), 246000)
    d.feed(ev.ReplyFinished(2), 246001)
    d.feed(chunk(2, 0, "Hello."), 247000)
    assert isinstance(d.spine.state, Speaking)
    d.feed(ev.PlaybackDrained(d.spine.state.epoch, 1000), 248000)
    state = d.spine.state
    assert isinstance(state, Listening) and state.follow_up
    # A cough in it keeps it a follow-up window of the follow-up length, not a wake-word one.
    d.feed(ev.SpeechStarted(249000), 252000)
    out = d.feed(ev.SpeechEnded(250000), 253000)
    assert cmd.StartTimer("listen", 3, 253000 + CHIMING.follow_up_samples) in out
    assert isinstance(d.spine.state, Listening) and d.spine.state.follow_up
    out = d.feed(ev.TimerFired("listen", 3), 253000 + CHIMING.follow_up_samples)
    assert isinstance(d.spine.state, Idle) and earcons(out) == []


def test_a_wake_word_barge_in_cuts_the_reply_first_then_chimes() -> None:
    d = chiming()
    d.feed(ev.WakeDetected("hey_jarvis", 0.9, 0), 0)
    d.feed(ev.SpeechStarted(4000), 8000)
    d.feed(ev.SpeechEnded(30000), 40000)
    d.feed(ev.TranscriptReady(1, "tell me a story", 30000), 45000)
    d.feed(ev.ReplyDelta(1, "Once upon a time. "), 46000)
    d.feed(chunk(1, 0, "Once upon a time."), 47000)
    state = d.spine.state
    assert isinstance(state, Speaking) and state.epoch == 2
    out = d.feed(ev.WakeDetected("hey_jarvis", 0.9, 50000), 50000)
    assert out.index(cmd.CutPlayback(2)) < out.index(cmd.PlayEarcon(3, "wake"))
    assert isinstance(d.spine.state, Listening)


def test_mute_and_unmute_chime_but_an_alarm_due_speaks_instead_of_the_unmute_chime() -> None:
    d = chiming()
    out = d.feed(ev.MuteChanged(True, "button"), 0)
    assert out == (cmd.SetMicrophone(False), cmd.PlayEarcon(1, "mute")) and isinstance(d.spine.state, Muted)
    out = d.feed(ev.MuteChanged(False, "button"), 1000)
    assert out == (cmd.SetMicrophone(True), cmd.PlayEarcon(2, "unmute")) and isinstance(d.spine.state, Idle)

    d.feed(ev.WakeDetected("hey_jarvis", 0.9, 2000), 2000)
    d.feed(ev.SpeechStarted(4000), 8000)
    d.feed(ev.SpeechEnded(30000), 40000)
    d.feed(ev.TranscriptReady(1, "set a timer", 30000), 45000)
    d.feed(ev.AlarmRequested(1, 1, "1 second"), 46000)
    assert d.spine.context.alarms_armed
    d.feed(ev.MuteChanged(True, "button"), 47000)
    d.feed(ev.TimerFired("alarm", 1), 62000)  # rings while muted: it waits
    assert d.spine.context.alarms_due
    out = d.feed(ev.MuteChanged(False, "button"), 70000)
    assert earcons(out) == [] and any(isinstance(c, cmd.StartTts) for c in out)


def test_with_earcons_off_the_machine_never_chimes() -> None:
    d = Driver(initial(replace(CHIMING, earcons=False)))
    outs = [
        d.feed(ev.WakeDetected("hey_jarvis", 0.9, 0), 0),
        d.feed(ev.TimerFired("listen", 1), CHIMING.listen_timeout_samples),
        d.feed(ev.MuteChanged(True, "button"), 200000),
        d.feed(ev.MuteChanged(False, "button"), 200001),
    ]
    assert all(earcons(out) == [] for out in outs)
