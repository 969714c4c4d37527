"""Whole-value checks of (state, commands) for the barge-in policy, with explicit sample times: a hint of voice
pauses the speech and confirmed speech cancels it, the stop phrase, the barge-in matrix, the wake word in the
assistant's own speech."""

from __future__ import annotations

from dataclasses import replace

from device.core import commands as cmd
from device.core import events as ev
from device.core.memory import Message
from device.core.states import (
    Alarm,
    Announcing,
    BargeInMatrix,
    BargeInRule,
    Hearing,
    Idle,
    Listening,
    Paused,
    Speaking,
    initial,
)
from tests.core_script import CONFIG, Driver, chunk
from tests.core_steps import ask, speaking

# ------------------------------------------------------------------ barge-in policy (issue 4): pause, confirm


def test_a_hint_of_voice_pauses_and_an_unconfirmed_hint_resumes_where_it_paused() -> None:
    d = Driver()
    turn = speaking(d)
    out = d.feed(ev.VoiceHint(60000, 0.8), 61024)
    assert isinstance(d.spine.state, Paused) and d.spine.state.hint_onset_sample == 60000
    assert out == (cmd.PausePlayback(1), cmd.StartTimer("confirm", turn, 61024 + CONFIG.confirm_samples))
    # The reply keeps streaming and synthesising while paused; its audio is queued behind the pause.
    assert d.feed(ev.ReplyDelta(turn, "The end. "), 61500) == (
        cmd.StartTts(turn, 2, "The end."),
        cmd.StartTimer("tts", turn, 61500 + CONFIG.tts_timeout_samples),
    )
    assert d.feed(chunk(turn, 2, "The end."), 62000) == (cmd.QueuePlayback(1, turn, 2), cmd.CancelTimer("tts", turn))
    out = d.feed(ev.TimerFired("confirm", turn), 61024 + CONFIG.confirm_samples)
    assert out == (cmd.ResumePlayback(1),)
    assert isinstance(d.spine.state, Speaking) and len(d.spine.state.reply.chunks) == 3


def test_confirmed_speech_after_a_pause_cancels_and_hears_the_user_from_the_hint() -> None:
    d = Driver()
    turn = speaking(d)
    d.feed(ev.VoiceHint(60000, 0.8), 61024)
    out = d.feed(ev.SpeechStarted(60512), 64000)
    assert d.spine.state == Hearing(turn + 1, 60000, 60000 - CONFIG.preroll_samples)
    assert out == (
        cmd.CancelTimer("confirm", turn),
        cmd.CutPlayback(1),
        cmd.CancelTurn(turn),
        cmd.StartTimer("utterance", turn + 1, 64000 + CONFIG.max_utterance_samples),
    )
    out = d.feed(ev.PlaybackStopped(1, 4000), 64100)  # paused after four words: those were heard
    assert out == (cmd.CommitHeard(turn, "Once upon a time. There was a fox.", "Once upon a time.", True),)


def test_a_reply_that_drains_while_paused_ends_the_pause() -> None:
    d = Driver()
    turn = speaking(d)
    d.feed(ev.ReplyFinished(turn), 54000)
    d.feed(ev.VoiceHint(60000, 0.8), 61024)
    out = d.feed(ev.PlaybackDrained(1, 8000), 61100)
    assert out[0] == cmd.CancelTimer("confirm", turn)
    assert d.spine.state == Listening(
        turn + 1, 61100, follow_up=True
    )  # the follow-up window: the user was about to speak


def test_the_stop_phrase_ends_the_exchange_without_an_answer() -> None:
    d = Driver()
    turn = speaking(d)
    d.feed(ev.SpeechStarted(60000), 63200)
    d.feed(ev.PlaybackStopped(1, 2000), 63300)
    d.feed(ev.SpeechEnded(70000), 81200)
    out = d.feed(ev.TranscriptReady(turn + 1, "Stop!", 70000), 85000)
    assert d.spine.state == Idle()
    assert out == (cmd.CancelTimer("asr", turn + 1), cmd.NoteIgnored("stop phrase 'Stop!': stopped, nothing to answer"))
    assert d.spine.context.memory == (
        Message("user", "tell me a story"),
        Message("assistant", "Once upon", interrupted=True),
    )


def test_the_stop_phrase_or_the_wake_word_ends_an_announcement() -> None:
    d = Driver()
    d.feed(ev.TimerFired("alarm", 1), 0)  # not armed: ignored
    d.spine = replace(d.spine, context=replace(d.spine.context, alarms_armed=(Alarm(1, "tea"),)))
    d.feed(ev.TimerFired("alarm", 1), 1000)
    assert isinstance(d.spine.state, Announcing)
    d.feed(chunk(1, 0, "Your tea timer is done."), 2000)
    out = d.feed(ev.VoiceHint(5000, 0.9), 6000)
    assert isinstance(d.spine.state, Paused) and out[0] == cmd.PausePlayback(1)
    d.feed(ev.SpeechStarted(5000), 8000)
    assert isinstance(d.spine.state, Hearing)
    d.feed(ev.SpeechEnded(15000), 26000)
    d.feed(ev.TranscriptReady(2, "Okay, stop it.", 15000), 30000)
    assert d.state() == Idle()


def test_a_wake_word_in_the_assistants_own_speech_is_ignored() -> None:
    d = Driver()
    speaking(d)
    before = d.spine
    out = d.feed(ev.WakeDetected("hey_jarvis", 0.95, 60000, in_own_speech=True), 60000)
    assert d.spine == before
    assert out == (
        cmd.NoteIgnored("the wake word was in the assistant's own speech (found in the played audio first)"),
    )


def test_the_matrix_decides_which_signal_interrupts_which_state() -> None:
    # Default: speech does not interrupt thinking (the user may be thinking aloud).
    d = Driver()
    ask(d, "tell me a story", 0)
    before = d.spine
    assert d.feed(ev.SpeechStarted(50000), 53200) == (
        cmd.NoteIgnored("the barge-in matrix does not let speech interrupt thinking"),
    )
    assert d.spine == before
    # A matrix that lets it: speech cancels the thinking turn at once (nothing plays, nothing to pause).
    lets = replace(CONFIG, barge_in=BargeInMatrix(thinking=BargeInRule(wake=True, speech=True)))
    d = Driver(initial(lets))
    turn = ask(d, "tell me a story", 0)
    d.feed(ev.SpeechStarted(50000), 53200)
    assert d.spine.state == Hearing(turn + 1, 50000, 50000 - CONFIG.preroll_samples)
    # A row's thresholds: a weak wake score does not interrupt speaking when the row asks for more.
    strict = replace(CONFIG, barge_in=BargeInMatrix(speaking=BargeInRule(wake=True, speech=False, wake_threshold=0.8)))
    d = Driver(initial(strict))
    speaking(d)
    before = d.spine
    out = d.feed(ev.WakeDetected("hey_jarvis", 0.6, 60000), 60000)
    assert out == (cmd.NoteIgnored("wake score 0.6 is below the 0.8 needed to interrupt speaking"),)
    out = d.feed(ev.VoiceHint(61000, 0.99), 61500)
    assert out == (cmd.NoteIgnored("the barge-in matrix does not let speech interrupt speaking"),)
    assert d.spine == before
