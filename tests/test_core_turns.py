"""Whole-value checks of (state, commands) along a turn's main paths, with explicit sample times: a whole turn,
sentences streamed to speech (the first long clause, the bounded lookahead), barge-in by wake word or speech,
timeouts, engine failures, alarms, stop, a lost sound card and the privacy mute; heard text and sentence splits."""

from __future__ import annotations

from dataclasses import replace

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
    Muted,
    Reply,
    Speaking,
    Stopping,
    Thinking,
    Transcribing,
    initial,
)
from tests.core_script import CONFIG, Driver, chunk
from tests.core_steps import ask, speaking, wake


def test_a_whole_turn_from_wake_word_to_idle() -> None:
    d = Driver()
    assert wake(d, 16000) == (cmd.StartTimer("listen", 1, 16000 + CONFIG.listen_timeout_samples),)
    assert d.spine.state == Listening(1, 16000, addressed=True)
    out = d.feed(ev.SpeechStarted(20000), 24000)
    assert d.state() == Hearing(1, 20000, 20000 - CONFIG.preroll_samples, addressed=True)
    assert out == (cmd.CancelTimer("listen", 1), cmd.StartTimer("utterance", 1, 24000 + CONFIG.max_utterance_samples))
    out = d.feed(ev.SpeechEnded(50000), 61200)
    assert d.state() == Transcribing(1, 50000, 20000, addressed=True)
    asr = cmd.StartAsr(1, 20000 - CONFIG.preroll_samples, 50000)
    assert out == (cmd.CancelTimer("utterance", 1), asr, cmd.StartTimer("asr", 1, 61200 + CONFIG.asr_timeout_samples))
    out = d.feed(ev.TranscriptReady(1, "What time is it?", 50000), 70000)
    assert d.state() == Thinking(1, Reply("What time is it?"))
    assert out == (cmd.CancelTimer("asr", 1), cmd.StartReply(1, "What time is it?", ()))
    out = d.feed(ev.ReplyDelta(1, "It's 9:41 "), 71000)
    assert out == ()
    out = d.feed(ev.ReplyDelta(1, "AM."), 72000)
    assert out == ()  # no white space after the stop yet: the sentence may still grow
    out = d.feed(ev.ReplyFinished(1), 73000)
    assert out == (cmd.StartTts(1, 0, "It's 9:41 AM."), cmd.StartTimer("tts", 1, 73000 + CONFIG.tts_timeout_samples))
    out = d.feed(chunk(1, 0, "It's 9:41 AM."), 75000)
    assert out == (
        cmd.OpenPlayback(1, 1),
        cmd.QueuePlayback(1, 1, 0),
        cmd.CancelTimer("tts", 1),  # synthesis delivered all it was asked for: its deadline is off
        cmd.FinishPlayback(1),
    )
    out = d.feed(ev.PlaybackDrained(1, 3000), 80000)
    assert out == (
        cmd.CommitHeard(1, "It's 9:41 AM.", "It's 9:41 AM.", interrupted=False),
        cmd.StartTimer("listen", 2, 80000 + CONFIG.follow_up_samples),
    )
    assert d.spine.state == Listening(2, 80000, follow_up=True)  # the follow-up window: no wake word needed
    d.feed(ev.TimerFired("listen", 2), 80000 + CONFIG.follow_up_samples)
    assert d.state() == Idle()
    assert d.spine.context.memory == (Message("user", "What time is it?"), Message("assistant", "It's 9:41 AM."))


def test_sentences_go_to_speech_as_soon_as_they_are_complete() -> None:
    d = Driver()
    turn = ask(d, "tell me a story", 0)
    assert d.feed(ev.ReplyDelta(turn, "Once upon a time. There "), 50000) == (
        cmd.StartTts(turn, 0, "Once upon a time."),
        cmd.StartTimer("tts", turn, 50000 + CONFIG.tts_timeout_samples),  # synthesis must deliver by then
    )
    # The deadline runs from the first sentence still out; a second one asked for does not move it.
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
    assert d.spine.state == Listening(turn + 1, 60000, addressed=True)
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
    assert d.spine.state == Listening(1, 22000, addressed=True)
    assert out[0] == cmd.CancelTimer("utterance", 1)


def test_empty_transcript_goes_back_to_idle_without_asking() -> None:
    d = Driver()
    wake(d, 0)
    d.feed(ev.SpeechStarted(10000), 13200)
    d.feed(ev.SpeechEnded(40000), 50000)
    out = d.feed(ev.TranscriptReady(1, "  ", 40000), 60000)
    assert d.spine.state == Idle()
    assert out == (cmd.CancelTimer("asr", 1), cmd.NoteIgnored("empty transcript: nothing to answer"))


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
    assert d.state() == Announcing(turn + 1, 2, "Your 1 second timer is done.")
    assert out[1:] == (
        cmd.OpenPlayback(2, turn + 1),
        cmd.StartTts(turn + 1, 0, "Your 1 second timer is done."),
        cmd.StartTimer("tts", turn + 1, 70000 + CONFIG.tts_timeout_samples),
    )


def test_engine_failure_ends_the_turn_with_a_short_apology_then_idle() -> None:
    d = Driver()
    turn = ask(d, "hello", 0)
    out = d.feed(ev.EngineFailed(turn, "reply", "HTTP 500"), 50000)
    sorry = "Sorry, I could not get an answer just now."
    assert d.spine.state == Announcing(turn + 1, 1, sorry)
    assert out == (
        cmd.CommitHeard(turn, "", "", interrupted=True),
        cmd.CancelTurn(turn),
        cmd.OpenPlayback(1, turn + 1),
        cmd.StartTts(turn + 1, 0, sorry),
        cmd.StartTimer("tts", turn + 1, 50000 + CONFIG.tts_timeout_samples),
    )
    d.feed(chunk(turn + 1, 0, sorry), 52000)
    d.feed(ev.PlaybackDrained(1, 8000), 62000)
    assert d.state() == Idle()
    assert [m.role for m in d.spine.context.memory] == ["user", "assistant"]  # the apology is not memory


def test_speech_to_text_that_hangs_ends_the_turn_with_its_apology_at_the_deadline() -> None:
    d = Driver()
    wake(d, 0)
    d.feed(ev.SpeechStarted(10000), 13200)
    out = d.feed(ev.SpeechEnded(40000), 50000)
    due = 50000 + CONFIG.asr_timeout_samples
    assert out[-1] == cmd.StartTimer("asr", 1, due) and isinstance(d.state(), Transcribing)
    out = d.feed(ev.TimerFired("asr", 1), due)  # no transcript: the engine hung
    sorry = "Sorry, I did not catch that."
    assert d.state() == Announcing(2, 1, sorry)
    assert out == (
        cmd.CancelTurn(1),
        cmd.CancelTimer("asr", 1),
        cmd.OpenPlayback(1, 2),
        cmd.StartTts(2, 0, sorry),
        cmd.StartTimer("tts", 2, due + CONFIG.tts_timeout_samples),
    )
    # Its transcript, if it ever comes, belongs to a cancelled turn; a deadline that crossed its cancel is dropped.
    late = d.feed(ev.TranscriptReady(1, "hello", 40000), due + 100)
    assert late == (cmd.NoteIgnored("TranscriptReady of turn 1 dropped: current turn is 2 in Announcing"),)
    crossed = d.feed(ev.TimerFired("asr", 1), due + 200)
    assert len(crossed) == 1 and isinstance(crossed[0], cmd.NoteIgnored) and "asr timer" in crossed[0].reason


def test_a_failed_apology_goes_quietly_to_idle() -> None:
    d = Driver()
    turn = ask(d, "hello", 0)
    d.feed(ev.EngineFailed(turn, "tts", "voice model broken"), 50000)
    out = d.feed(ev.EngineFailed(turn + 1, "tts", "voice model broken"), 50100)
    assert d.spine.state == Idle()
    assert out[-1] == cmd.NoteIgnored("announcement failed: voice model broken")


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
    assert d.state() == Idle()


# ------------------------------------------------------------ speaking while thinking: first clause, lookahead


def test_a_long_first_sentence_goes_to_speech_at_its_first_long_clause() -> None:
    d = Driver()
    turn = ask(d, "tell me a story", 0)
    out = d.feed(ev.ReplyDelta(turn, "Once upon a time, in a small village at the edge of a great forest, there "), 1)
    assert out == (
        cmd.StartTts(turn, 0, "Once upon a time, in a small village at the edge of a great forest,"),
        cmd.StartTimer("tts", turn, 1 + CONFIG.tts_timeout_samples),
    )
    out = d.feed(ev.ReplyDelta(turn, "lived a clockmaker. Every day, "), 2)
    assert out == (cmd.StartTts(turn, 1, "there lived a clockmaker."),)  # later: whole sentences only


def test_synthesis_stays_a_bounded_lookahead_ahead_of_the_speaker() -> None:
    d = Driver(initial(replace(CONFIG, tts_lookahead_samples=3000, tts_in_flight=1)))
    turn = ask(d, "tell me a story", 0)
    t0 = 50000
    tts = CONFIG.tts_timeout_samples
    out = d.feed(ev.ReplyDelta(turn, "One two. Three four. Five six. Seven eight. "), t0)
    assert out == (cmd.StartTts(turn, 0, "One two."), cmd.StartTimer("tts", turn, t0 + tts))  # one in flight
    out = d.feed(chunk(turn, 0, "One two."), t0 + 100)  # 2,000 samples: below the lookahead, ask for more
    assert out == (
        cmd.OpenPlayback(1, turn),
        cmd.QueuePlayback(1, turn, 0),
        cmd.StartTts(turn, 1, "Three four."),
        cmd.StartTimer("tts", turn, t0 + 100 + tts),  # the deadline runs again for the next sentence
    )
    out = d.feed(chunk(turn, 1, "Three four."), t0 + 200)  # 4,000 queued, 100 played: 3,900 ahead, full
    assert out == (
        cmd.QueuePlayback(1, turn, 1),
        cmd.StartTimer("lookahead", turn, t0 + 200 + 901),
        cmd.CancelTimer("tts", turn),  # nothing out for synthesis while the lookahead is full
    )
    out = d.feed(ev.TimerFired("lookahead", turn), t0 + 1101)  # 2,999 ahead now: room for one more
    assert out == (cmd.StartTts(turn, 2, "Five six."), cmd.StartTimer("tts", turn, t0 + 1101 + tts))
    d.feed(ev.ReplyFinished(turn), t0 + 1200)
    assert d.feed(chunk(turn, 2, "Five six."), t0 + 1300) == (
        cmd.QueuePlayback(1, turn, 2),
        cmd.StartTimer("lookahead", turn, t0 + 1300 + 4800 - 3000 + 1),
        cmd.CancelTimer("tts", turn),
    )
    out = d.feed(ev.TimerFired("lookahead", turn), t0 + 3101)
    assert out == (cmd.StartTts(turn, 3, "Seven eight."), cmd.StartTimer("tts", turn, t0 + 3101 + tts))
    out = d.feed(chunk(turn, 3, "Seven eight."), t0 + 3200)
    assert out == (  # all synthesised: finish the epoch
        cmd.QueuePlayback(1, turn, 3),
        cmd.CancelTimer("tts", turn),
        cmd.FinishPlayback(1),
    )


# ---------------------------------------------------------------------------------------------- privacy mute


def test_mute_ends_the_turn_and_turns_the_mic_off_and_an_alarm_waits_for_the_unmute() -> None:
    d = Driver()
    turn = speaking(d)
    d.spine = replace(d.spine, context=replace(d.spine.context, alarms_armed=(Alarm(1, "tea"),)))
    out = d.feed(ev.MuteChanged(True, "SIGUSR1"), 60000)
    assert d.spine.state == Muted()
    assert out == (cmd.CutPlayback(1), cmd.CancelTurn(turn), cmd.SetMicrophone(False))
    assert d.feed(ev.WakeDetected("hey_jarvis", 0.99, 61000), 61000) == (
        cmd.NoteIgnored("muted: the microphone is not listened to"),
    )
    d.feed(ev.TimerFired("alarm", 1), 70000)
    assert d.spine.state == Muted() and d.spine.context.alarms_due == (Alarm(1, "tea"),)
    out = d.feed(ev.MuteChanged(False, "SIGUSR2"), 80000)
    assert isinstance(d.spine.state, Announcing) and out[0] == cmd.SetMicrophone(True)


def test_a_muted_assistant_stays_muted_through_a_lost_sound_card() -> None:
    d = Driver()
    d.feed(ev.MuteChanged(True, "monitor"), 0)
    d.feed(ev.AudioDeviceLost("unplugged"), 100)
    assert d.spine.state == Degraded("unplugged", 1, then="muted")
    d.feed(ev.AudioDeviceRestored(), 20000)
    assert d.state() == Muted()


def test_the_synthesis_deadline_is_off_once_the_turn_ends_and_a_late_fire_is_dropped() -> None:
    d = Driver()
    turn = ask(d, "tell me a story", 0)
    d.feed(ev.ReplyDelta(turn, "Once upon a time. "), 50000)
    out = wake(d, 60000)  # the user talks over it before any audio: the deadline goes with the turn
    assert cmd.CancelTimer("tts", turn) in out
    out = d.feed(ev.TimerFired("tts", turn), 50000 + CONFIG.tts_timeout_samples)  # crossed its cancel
    assert isinstance(d.state(), Listening) and len(out) == 1 and isinstance(out[0], cmd.NoteIgnored)


def test_synthesis_that_hangs_while_paused_ends_the_answer_with_the_apology() -> None:
    d = Driver()
    turn = ask(d, "tell me a story", 0)
    d.feed(ev.ReplyDelta(turn, "Once upon a time. There was a fox. "), 50000)
    d.feed(chunk(turn, 0, "Once upon a time."), 52000)
    d.feed(ev.VoiceHint(60000, 0.8), 60100)  # paused by a hint; the second sentence never comes back
    due = 52000 + CONFIG.tts_timeout_samples
    out = d.feed(ev.TimerFired("tts", turn), due)
    assert isinstance(d.state(), Announcing)
    assert cmd.CutPlayback(1) in out and cmd.CancelTurn(turn) in out
    assert cmd.StartTts(turn + 1, 0, "Sorry, something went wrong with my voice.") in out
