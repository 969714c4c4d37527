"""Whole-value checks of (state, commands) for early transcription, with explicit sample times: a pause is
transcribed before the endpoint, and the endpoint then answers at once, awaits it, or transcribes afresh."""

from __future__ import annotations

from dataclasses import replace

from device.core import commands as cmd
from device.core import events as ev
from device.core.states import Hearing, Reply, Thinking, Transcribing, initial
from tests.core_script import CONFIG, Driver
from tests.core_steps import wake


def test_a_pause_is_transcribed_early_and_the_endpoint_answers_at_once() -> None:
    d = Driver()
    wake(d, 0)
    d.feed(ev.SpeechStarted(10000), 13200)
    out = d.feed(ev.SpeechPaused(40000), 44800)
    assert out == (cmd.StartAsr(1, 10000 - CONFIG.preroll_samples, 40000),)
    assert d.spine.state == Hearing(1, 10000, 10000 - CONFIG.preroll_samples, early_to_sample=40000, addressed=True)
    assert d.feed(ev.TranscriptReady(1, "What time is it?", 40000), 49800) == ()
    # The endpoint confirms the pause as the end: no second transcription, the question goes out at once.
    out = d.feed(ev.SpeechEnded(40000), 51200)
    assert out == (cmd.CancelTimer("utterance", 1), cmd.StartReply(1, "What time is it?", ()))
    assert d.state() == Thinking(1, Reply("What time is it?"))


def test_an_early_transcript_still_running_at_the_endpoint_is_awaited_not_repeated() -> None:
    d = Driver()
    wake(d, 0)
    d.feed(ev.SpeechStarted(10000), 13200)
    d.feed(ev.SpeechPaused(40000), 44800)
    out = d.feed(ev.SpeechEnded(40000), 51200)
    deadline = cmd.StartTimer("asr", 1, 51200 + CONFIG.asr_timeout_samples)  # speech to text must answer by then
    assert out == (cmd.CancelTimer("utterance", 1), deadline)
    assert d.spine.state == Transcribing(1, 40000, 10000, addressed=True)
    d.feed(ev.TranscriptReady(1, "What time is it?", 40000), 53000)
    assert d.state() == Thinking(1, Reply("What time is it?"))


def test_a_pause_the_user_speaks_on_past_is_never_answered() -> None:
    d = Driver()
    wake(d, 0)
    d.feed(ev.SpeechStarted(10000), 13200)
    d.feed(ev.SpeechPaused(30000), 34800)  # "Set a timer ..."
    d.feed(ev.SpeechPaused(50000), 54800)  # "... for five minutes": the later pause supersedes the first
    out = d.feed(ev.TranscriptReady(1, "Set a timer", 30000), 56000)
    assert out == (cmd.NoteIgnored("transcript up to sample 30000 is outdated: the user spoke on (waiting for 50000)"),)
    d.feed(ev.SpeechEnded(50000), 61200)
    assert d.spine.state == Transcribing(1, 50000, 10000, addressed=True)
    d.feed(ev.TranscriptReady(1, "Set a timer for five minutes.", 50000), 64000)
    assert d.state() == Thinking(1, Reply("Set a timer for five minutes."))


def test_an_end_after_the_last_pause_transcribes_afresh_and_ignores_the_early_text() -> None:
    d = Driver()
    wake(d, 0)
    d.feed(ev.SpeechStarted(10000), 13200)
    d.feed(ev.SpeechPaused(30000), 34800)
    d.feed(ev.TranscriptReady(1, "Set a timer", 30000), 40000)
    out = d.feed(ev.SpeechEnded(52000), 63200)  # spoke on after the pause, without a second pause report
    asr = cmd.StartAsr(1, 10000 - CONFIG.preroll_samples, 52000)
    assert out == (cmd.CancelTimer("utterance", 1), asr, cmd.StartTimer("asr", 1, 63200 + CONFIG.asr_timeout_samples))
    assert d.spine.state == Transcribing(1, 52000, 10000, addressed=True)


def test_a_failed_early_transcription_is_retried_at_the_endpoint() -> None:
    d = Driver()
    wake(d, 0)
    d.feed(ev.SpeechStarted(10000), 13200)
    d.feed(ev.SpeechPaused(40000), 44800)
    d.feed(ev.EngineFailed(1, "asr", "RuntimeError: busy"), 46000)
    out = d.feed(ev.SpeechEnded(40000), 51200)
    asr = cmd.StartAsr(1, 10000 - CONFIG.preroll_samples, 40000)
    assert out == (cmd.CancelTimer("utterance", 1), asr, cmd.StartTimer("asr", 1, 51200 + CONFIG.asr_timeout_samples))


def test_with_early_transcription_off_a_pause_starts_nothing() -> None:
    d = Driver(initial(replace(CONFIG, early_asr=False)))
    wake(d, 0)
    d.feed(ev.SpeechStarted(10000), 13200)
    out = d.feed(ev.SpeechPaused(40000), 44800)
    assert out == (cmd.NoteIgnored("early transcription is off: the endpoint starts it"),)
    out = d.feed(ev.SpeechEnded(40000), 51200)
    asr = cmd.StartAsr(1, 10000 - CONFIG.preroll_samples, 40000)
    assert out == (cmd.CancelTimer("utterance", 1), asr, cmd.StartTimer("asr", 1, 51200 + CONFIG.asr_timeout_samples))
