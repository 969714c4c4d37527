"""Whole-value checks of (state, commands) along the paths that matter, with explicit sample times."""

from __future__ import annotations

from device.core import commands as cmd
from device.core import events as ev
from device.core.memory import Message, SpokenChunk, heard_text, split_sentences
from device.core.states import (
    Alarm,
    Announcing,
    Degraded,
    Hearing,
    Idle,
    Listening,
    Reply,
    Speaking,
    Stopping,
    Thinking,
    Transcribing,
)
from tests.core_script import CONFIG, Driver, chunk


def wake(d: Driver, now: int) -> tuple[cmd.Command, ...]:
    return d.feed(ev.WakeDetected("hey_jarvis", 0.9, now), now)


def ask(d: Driver, text: str, at: int) -> int:
    """Wake, speak, end, transcribe: returns the turn now thinking."""
    wake(d, at)
    d.feed(ev.SpeechStarted(at + 4000), at + 8000)
    d.feed(ev.SpeechEnded(at + 30000), at + 40000)
    turn = d.spine.state.turn  # type: ignore[union-attr]
    d.feed(ev.TranscriptReady(turn, text), at + 45000)
    return turn


def test_a_whole_turn_from_wake_word_to_idle() -> None:
    d = Driver()
    assert wake(d, 16000) == (cmd.StartTimer("listen", 1, 16000 + CONFIG.listen_timeout_samples),)
    assert d.spine.state == Listening(1, 16000)
    out = d.feed(ev.SpeechStarted(20000), 24000)
    assert d.spine.state == Hearing(1, 20000, 20000 - CONFIG.preroll_samples)
    assert out == (cmd.CancelTimer("listen", 1), cmd.StartTimer("utterance", 1, 24000 + CONFIG.max_utterance_samples))
    out = d.feed(ev.SpeechEnded(50000), 61200)
    assert d.spine.state == Transcribing(1)
    assert out == (cmd.CancelTimer("utterance", 1), cmd.StartAsr(1, 20000 - CONFIG.preroll_samples, 50000))
    out = d.feed(ev.TranscriptReady(1, "What time is it?"), 70000)
    assert d.spine.state == Thinking(1, Reply("What time is it?"))
    assert out == (cmd.StartReply(1, "What time is it?", ()),)
    out = d.feed(ev.ReplyDelta(1, "It's 9:41 "), 71000)
    assert out == ()
    out = d.feed(ev.ReplyDelta(1, "AM."), 72000)
    assert out == ()  # no white space after the stop yet: the sentence may still grow
    out = d.feed(ev.ReplyFinished(1), 73000)
    assert out == (cmd.StartTts(1, 0, "It's 9:41 AM."),)
    out = d.feed(chunk(1, 0, "It's 9:41 AM."), 75000)
    assert out == (cmd.OpenPlayback(1, 1), cmd.QueuePlayback(1, 1, 0), cmd.FinishPlayback(1))
    out = d.feed(ev.PlaybackDrained(1, 3000), 80000)
    assert out == (cmd.CommitHeard(1, "It's 9:41 AM.", "It's 9:41 AM.", interrupted=False),)
    assert d.spine.state == Idle()
    assert d.spine.context.memory == (Message("user", "What time is it?"), Message("assistant", "It's 9:41 AM."))


def test_sentences_go_to_speech_as_soon_as_they_are_complete() -> None:
    d = Driver()
    turn = ask(d, "tell me a story", 0)
    assert d.feed(ev.ReplyDelta(turn, "Once upon a time. There "), 50000) == (
        cmd.StartTts(turn, 0, "Once upon a time."),
    )
    assert d.feed(ev.ReplyDelta(turn, "was a fox! And"), 51000) == (cmd.StartTts(turn, 1, "There was a fox!"),)


def test_barge_in_by_wake_word_cuts_cancels_and_commits_only_what_was_heard() -> None:
    d = Driver()
    turn = ask(d, "tell me a story", 0)
    d.feed(ev.ReplyDelta(turn, "Once upon a time. There was a fox. "), 50000)
    d.feed(chunk(turn, 0, "Once upon a time."), 52000)
    d.feed(chunk(turn, 1, "There was a fox."), 53000)
    out = wake(d, 60000)
    assert out == (
        cmd.CutPlayback(1),
        cmd.CancelTurn(turn),
        cmd.StartTimer("listen", turn + 1, 60000 + CONFIG.listen_timeout_samples),
    )
    assert d.spine.state == Listening(turn + 1, 60000)
    # The fade ended after 5,500 samples: four words of 1,000 each of the first sentence, and a half word.
    out = d.feed(ev.PlaybackStopped(1, 5500), 60160)
    assert out == (cmd.CommitHeard(turn, "Once upon a time. There was a fox.", "Once upon a time. There", True),)
    assert d.spine.context.memory[-1] == Message("assistant", "Once upon a time. There", interrupted=True)


def test_a_result_of_a_cancelled_turn_is_dropped_as_data() -> None:
    d = Driver()
    turn = ask(d, "tell me a story", 0)
    d.feed(ev.ReplyDelta(turn, "Once upon a time. "), 50000)
    d.feed(chunk(turn, 0, "Once upon a time."), 52000)
    wake(d, 60000)
    before = d.spine
    out = d.feed(chunk(turn, 1, "There was a fox."), 61000)
    assert d.spine == before
    assert out == (cmd.NoteIgnored(f"TtsChunkReady of turn {turn} dropped: current turn is {turn + 1} in Listening"),)


def test_barge_in_by_speech_starts_hearing_the_new_utterance_at_once() -> None:
    d = Driver()
    turn = ask(d, "tell me a story", 0)
    d.feed(ev.ReplyDelta(turn, "Once upon a time. "), 50000)
    d.feed(chunk(turn, 0, "Once upon a time."), 52000)
    out = d.feed(ev.SpeechStarted(70000), 73200)
    assert d.spine.state == Hearing(turn + 1, 70000, 70000 - CONFIG.preroll_samples)
    assert out == (
        cmd.CutPlayback(1),
        cmd.CancelTurn(turn),
        cmd.StartTimer("utterance", turn + 1, 73200 + CONFIG.max_utterance_samples),
    )


def test_wake_word_while_thinking_cancels_and_keeps_roles_alternating() -> None:
    d = Driver()
    turn = ask(d, "tell me a story", 0)
    out = wake(d, 50000)
    assert out[:2] == (cmd.CommitHeard(turn, "", "", True), cmd.CancelTurn(turn))
    assert [m.role for m in d.spine.context.memory] == ["user", "assistant"]


def test_listening_times_out_back_to_idle() -> None:
    d = Driver()
    wake(d, 0)
    d.feed(ev.TimerFired("listen", 1), CONFIG.listen_timeout_samples)
    assert d.spine.state == Idle()


def test_a_short_noise_keeps_listening() -> None:
    d = Driver()
    wake(d, 0)
    d.feed(ev.SpeechStarted(10000), 13200)
    out = d.feed(ev.SpeechEnded(11000), 22000)
    assert d.spine.state == Listening(1, 22000)
    assert out[0] == cmd.CancelTimer("utterance", 1)


def test_empty_transcript_goes_back_to_idle_without_asking() -> None:
    d = Driver()
    wake(d, 0)
    d.feed(ev.SpeechStarted(10000), 13200)
    d.feed(ev.SpeechEnded(40000), 50000)
    out = d.feed(ev.TranscriptReady(1, "  "), 60000)
    assert d.spine.state == Idle()
    assert out == (cmd.NoteIgnored("empty transcript: nothing to answer"),)


def test_an_alarm_rings_when_idle_and_waits_while_busy() -> None:
    d = Driver()
    turn = ask(d, "set a timer for 1 second", 0)
    out = d.feed(ev.AlarmRequested(turn, 1, "1 second"), 50000)
    assert out == (cmd.StartTimer("alarm", 1, 50000 + 16000),)
    d.feed(ev.ReplyDelta(turn, "Okay. "), 50100)
    d.feed(ev.ReplyFinished(turn), 50200)
    d.feed(chunk(turn, 0, "Okay."), 51000)
    out = d.feed(ev.TimerFired("alarm", 1), 66000)  # rings while speaking: wait
    assert out == () and isinstance(d.spine.state, Speaking)
    assert d.spine.context.alarms_due == (Alarm(1, "1 second"),)
    out = d.feed(ev.PlaybackDrained(1, 1000), 70000)  # back to idle: announce now
    assert d.spine.state == Announcing(turn + 1, 2, 1)
    assert out[1:] == (cmd.OpenPlayback(2, turn + 1), cmd.StartTts(turn + 1, 0, "Your 1 second timer is done."))


def test_engine_failure_ends_the_turn() -> None:
    d = Driver()
    turn = ask(d, "hello", 0)
    out = d.feed(ev.EngineFailed(turn, "reply", "boom"), 50000)
    assert d.spine.state == Idle()
    assert cmd.CancelTurn(turn) in out


def test_stop_cancels_everything() -> None:
    d = Driver()
    turn = ask(d, "tell me a story", 0)
    d.feed(ev.ReplyDelta(turn, "Once upon a time. "), 50000)
    d.feed(chunk(turn, 0, "Once upon a time."), 52000)
    out = d.feed(ev.StopRequested("signal"), 53000)
    assert d.spine.state == Stopping()
    assert out == (cmd.CutPlayback(1), cmd.CancelTurn(turn))
    assert d.feed(ev.WakeDetected("hey_jarvis", 0.9, 54000), 54000) == (
        cmd.NoteIgnored("stopping: nothing new starts"),
    )


def test_heard_text_counts_only_whole_words() -> None:
    chunks = (SpokenChunk(0, "one two", 2000, (900, 2000)), SpokenChunk(1, "three four", 2000, (1000, 1900)))
    assert heard_text(chunks, 0) == ""
    assert heard_text(chunks, 899) == ""
    assert heard_text(chunks, 900) == "one"
    assert heard_text(chunks, 2999) == "one two"
    assert heard_text(chunks, 3000) == "one two three"
    assert heard_text(chunks, 10**6) == "one two three four"


def test_sentence_split_waits_for_white_space() -> None:
    assert split_sentences("It costs 3.5 euros. Next", 0) == (("It costs 3.5 euros.",), 20)
    assert split_sentences("Done!", 0) == ((), 0)
    assert split_sentences('He said "stop." Then', 0) == (('He said "stop."',), 16)


def test_a_lost_sound_card_degrades_retries_with_growing_back_off_and_recovers() -> None:
    d = Driver()
    turn = ask(d, "tell me a story", 0)
    d.feed(ev.ReplyDelta(turn, "Once upon a time. "), 50000)
    d.feed(chunk(turn, 0, "Once upon a time."), 52000)
    out = d.feed(ev.AudioDeviceLost("stream error: device unavailable"), 60000)
    assert d.spine.state == Degraded("stream error: device unavailable", 1)
    assert out == (cmd.CutPlayback(1), cmd.CancelTurn(turn), cmd.StartTimer("reopen", 1, 60000 + 16000))
    assert d.feed(ev.WakeDetected("hey_jarvis", 0.9, 70000), 70000)[0].reason.startswith("no sound card")  # type: ignore[union-attr]
    assert d.feed(ev.TimerFired("reopen", 1), 76000) == (cmd.ReopenAudio(1),)
    out = d.feed(ev.AudioDeviceLost("cannot open: no such device"), 76100)
    assert out == (cmd.StartTimer("reopen", 2, 76100 + 32000),)  # the back-off doubled
    d.feed(ev.TimerFired("reopen", 2), 108100)
    d.feed(ev.AudioDeviceRestored(), 108200)
    assert d.spine.state == Idle()
