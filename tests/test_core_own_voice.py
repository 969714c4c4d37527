"""The assistant never answers itself, and a breaker suspends voice barge-in when it keeps hearing itself.

Scenes as whole values, with explicit sample times. In `speaking()` the story's words are 1,000 samples each:
"Once upon a time." plays over samples 0-4,000 of epoch 1 and "There was a fox." over 4,000-8,000.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from device.core import commands as cmd
from device.core import events as ev
from device.core.memory import Message, SpokenChunk, own_words_match, sounded_words
from device.core.states import Hearing, Idle, Listening, Paused, Thinking, Transcribing, initial
from device.core.voice import SELF_HEARD, is_own_voice
from tests.core_script import CONFIG, Driver, chunk

TAIL = CONFIG.echo_tail_samples
STORY = "Once upon a time. There was a fox."


def ask(d: Driver, text: str, at: int) -> int:
    """Wake, speak, end, transcribe: returns the turn now thinking."""
    d.feed(ev.WakeDetected("hey_jarvis", 0.9, at), at)
    d.feed(ev.SpeechStarted(at + 4000), at + 8000)
    d.feed(ev.SpeechEnded(at + 30000), at + 40000)
    turn = d.spine.state.turn  # type: ignore[union-attr]
    d.feed(ev.TranscriptReady(turn, text, at + 30000), at + 45000)
    return turn


def speaking(d: Driver, at: int = 0) -> int:
    """Ask for a story and let its two sentences play from `at + 52000`: returns the speaking turn."""
    turn = ask(d, "tell me a story", at)
    d.feed(ev.ReplyDelta(turn, STORY + " "), at + 50000)
    d.feed(ev.ReplyFinished(turn), at + 50001)
    d.feed(chunk(turn, 0, "Once upon a time."), at + 52000)
    d.feed(chunk(turn, 1, "There was a fox."), at + 53000)
    return turn


def heard_out(d: Driver, text: str, onset: int, at: int, speech_samples: int = 20000) -> tuple[cmd.Command, ...]:
    """An utterance from `onset` in the current listening or hearing state, lasting `speech_samples` (1.25 s, a
    request's length), transcribed as `text` at `at`."""
    if isinstance(d.spine.state, Listening):
        d.feed(ev.SpeechStarted(onset), onset + 3200)
    assert isinstance(d.spine.state, Hearing)
    d.feed(ev.SpeechEnded(onset + speech_samples), at - 1000)
    assert isinstance(d.spine.state, Transcribing)
    return d.feed(ev.TranscriptReady(d.spine.state.turn, text, onset + speech_samples), at)


def self_heard(out: tuple[cmd.Command, ...]) -> bool:
    return any(isinstance(c, cmd.NoteIgnored) and c.reason.startswith(SELF_HEARD) for c in out)


def test_its_own_echo_that_cut_a_reply_is_not_answered_and_it_listens_on() -> None:
    d = Driver()
    turn = speaking(d)
    # The echo of "There was" fools hearing: a hint pauses the story, confirmed "speech" cuts it.
    d.feed(ev.VoiceHint(57000, 0.8), 57100)
    d.feed(ev.SpeechStarted(57000), 58000)
    d.feed(ev.PlaybackStopped(1, 5100), 58200)  # paused inside "was": "There was" sounded, "There" was heard
    assert d.spine.context.own_voice.words[-2:] == ("There", "was")
    memory = d.spine.context.memory
    out = heard_out(d, "There was...", 57000, 80000)
    reason = (
        f"{SELF_HEARD}: 'There was...' is the assistant's own voice (it began while that voice sounded or in its "
        "echo tail, and repeats what it just said): not a user turn (1 within 60 s)"
    )
    listen = cmd.StartTimer("listen", turn + 1, 80000 + CONFIG.follow_up_samples)
    assert out == (cmd.CancelTimer("asr", turn + 1), cmd.NoteIgnored(reason), listen)
    assert d.spine.state == Listening(turn + 1, 80000, follow_up=True)
    assert d.spine.context.memory == memory  # no user turn was added
    assert d.spine.context.own_voice.self_heard_at == (80000,)


def test_a_user_who_talks_over_the_reply_is_answered() -> None:
    d = Driver()
    turn = speaking(d)
    d.feed(ev.SpeechStarted(57000), 58000)
    d.feed(ev.PlaybackStopped(1, 5100), 58200)
    out = heard_out(d, "What time is it?", 57000, 80000)
    asked = cmd.StartReply(turn + 1, "What time is it?", d.spine.context.memory[:-1])
    assert out == (cmd.CancelTimer("asr", turn + 1), asked)
    assert d.spine.context.own_voice.self_heard_at == ()


@pytest.mark.parametrize(
    ("onset_after_drain", "answered"),
    [(0, False), (TAIL, False), (TAIL + 1, True), (3 * 16000, True)],
)
def test_the_last_words_in_the_follow_up_window_are_echo_only_within_the_tail(
    onset_after_drain: int, answered: bool
) -> None:
    """The follow-up window opens at the drain, while the echo of the last words still rings: those words are
    echo if they began within the tail; later, the user repeating them is a request."""
    d = Driver()
    turn = speaking(d)
    drained = 70000
    d.feed(ev.PlaybackDrained(1, 8000), drained)
    assert d.spine.state == Listening(turn + 1, drained, follow_up=True)
    onset = drained + onset_after_drain
    out = heard_out(d, "There was a fox.", onset, onset + 30000)
    assert any(isinstance(c, cmd.StartReply) for c in out) is answered
    assert self_heard(out) is not answered


def test_a_transcript_before_the_cut_is_reported_is_checked_against_the_whole_cut_reply() -> None:
    d = Driver()
    speaking(d)
    d.feed(ev.SpeechStarted(57000), 58000)  # cut; its PlaybackStopped has not come yet
    assert 1 in d.spine.context.own_voice.sounding
    out = heard_out(d, "a fox", 57000, 80000)
    assert self_heard(out)


def test_one_word_is_echo_only_if_it_is_among_the_last_played_words() -> None:
    d = Driver()
    speaking(d)
    d.feed(ev.PlaybackDrained(1, 8000), 70000)
    out = heard_out(d, "Fox.", 70000, 100000)  # the last word, at the drain: its echo
    assert self_heard(out)
    # Said long before the end, whisper would not pick it up: not its echo. (With short talk-overs answered;
    # by default a one-word talk-over is a stop, below.)
    d = Driver(initial(replace(CONFIG, short_interruption_max_words=0)))
    speaking(d)
    d.feed(ev.PlaybackDrained(1, 8000), 70000)
    out = heard_out(d, "Once?", 70000, 100000)
    assert not self_heard(out) and any(isinstance(c, cmd.StartReply) for c in out)


def stopped_short(out: tuple[cmd.Command, ...]) -> bool:
    return any(isinstance(c, cmd.NoteIgnored) and c.reason.startswith("short interruption") for c in out)


@pytest.mark.parametrize("text", ["So.", "Come see.", "Hey Jarvis, then reminded."])
def test_a_talk_over_of_a_word_or_two_is_a_stop_never_answered(text: str) -> None:
    d = Driver()
    speaking(d)
    d.feed(ev.SpeechStarted(56000), 57000)  # cuts the story
    out = heard_out(d, text, 56000, 80000)
    assert stopped_short(out) and not any(isinstance(c, cmd.StartReply) for c in out)
    assert not self_heard(out) and isinstance(d.state(), Idle)


@pytest.mark.parametrize(
    ("text", "stop"),
    [
        ("All of this stop.", True),  # "Hey Jarvis, stop." over the echo, as whisper wrote it on a real stream
        ("All right, we stop.", True),
        ("Okay, now we're gonna stop.", True),  # fillers ("okay", "now") are not counted
        ("Okay, y'all are missed. Stop.", True),
        ("Could you stop?", True),
        ("You need to be honest, stop.", True),  # "Hey Jarvis, stop." on a loaded real stream: its last clause
        ("Tell me a long story about the old lighthouse keeper. Cancel.", True),
        ("Tell me why they had to stop.", False),  # longer: a request
        ("Tell me why, when the music had to stop.", False),  # its last clause is more than the stop
        ("Stop the music and tell me.", False),  # a stop phrase, but not at the end
    ],
)
def test_a_short_talk_over_ending_in_a_stop_phrase_is_a_stop(text: str, stop: bool) -> None:
    d = Driver()
    speaking(d)
    d.feed(ev.SpeechStarted(56000), 57000)  # cuts the story
    out = heard_out(d, text, 56000, 80000)
    assert stopped_short(out) is stop
    assert any(isinstance(c, cmd.StartReply) for c in out) is not stop


@pytest.mark.parametrize(("speech_samples", "stop"), [(9600, True), (16000, True), (16160, False), (24000, False)])
def test_a_talk_over_too_short_for_a_request_is_a_stop_whatever_whisper_made_of_it(
    speech_samples: int, stop: bool
) -> None:
    # "Cancel." said over a loud echo came back as "I'm so f *ing.": four words, no stop phrase, 0.6 s of speech.
    d = Driver()
    speaking(d)
    d.feed(ev.SpeechStarted(56000), 57000)  # cuts the story
    out = heard_out(d, "I'm so f *ing.", 56000, 90000, speech_samples)
    assert stopped_short(out) is stop
    assert any(isinstance(c, cmd.StartReply) for c in out) is not stop


@pytest.mark.parametrize(("speech_samples", "stop"), [(9216, True), (24000, False)])
def test_a_short_talk_over_transcribed_at_its_pause_is_a_stop_too(speech_samples: int, stop: bool) -> None:
    # The echo suite's "Cancel.": transcribed early, at the pause that turned out to be its end (0.58 s of speech).
    d = Driver()
    speaking(d)
    d.feed(ev.SpeechStarted(56000), 57000)  # cuts the story
    end = 56000 + speech_samples
    d.feed(ev.SpeechPaused(end), end + 4800)
    turn = d.spine.state.turn  # type: ignore[union-attr]
    d.feed(ev.TranscriptReady(turn, "I'm so f *ing.", end), end + 6000)
    out = d.feed(ev.SpeechEnded(end), end + 8000)
    assert stopped_short(out) is stop
    assert any(isinstance(c, cmd.StartReply) for c in out) is not stop


@pytest.mark.parametrize(
    ("text", "stop"),
    [
        ("What time is it?", False),  # the real-stream suite's question, 0.9 s, taken for a stop 3 times
        ("What a tight visit.", False),  # the same question misheard: a request all the same
        ("Um.", True),  # "Hey Jarvis, stop." with the stop garbled: a word or two is still a stop
        ("All of this stop.", True),
    ],
)
def test_a_short_request_after_the_wake_word_over_the_story_is_answered_not_taken_for_a_stop(
    text: str, stop: bool
) -> None:
    # "Hey Jarvis. What time is it?" over the story: the wake word cuts it, and the question begins within the
    # echo tail of the story's last sample, so it is a talk-over; 0.9 s of speech is not a stop when the user
    # called first.
    d = Driver()
    speaking(d)
    d.feed(ev.WakeDetected("hey_jarvis", 0.9, 56000), 56500)  # cuts the story
    assert isinstance(d.state(), Listening) and d.state().addressed  # type: ignore[union-attr]
    out = heard_out(d, text, 57000, 90000, speech_samples=14400)
    assert stopped_short(out) is stop
    assert any(isinstance(c, cmd.StartReply) for c in out) is not stop
    # Without the wake word (voice barge-in), the same 0.9 s is a talk-over too short for a request.
    d = Driver()
    speaking(d)
    d.feed(ev.SpeechStarted(57000), 57500)  # cuts the story
    out = heard_out(d, text, 57000, 90000, speech_samples=14400)
    assert stopped_short(out) and not any(isinstance(c, cmd.StartReply) for c in out)


def test_a_window_reopened_after_the_wake_word_stays_addressed_and_one_after_a_short_talk_over_does_not() -> None:
    d = Driver()
    speaking(d)
    d.feed(ev.WakeDetected("hey_jarvis", 0.9, 56000), 56500)
    d.feed(ev.SpeechStarted(57000), 57500)
    d.feed(ev.SpeechEnded(57000 + CONFIG.min_utterance_samples - 1), 61000)  # too short: the window reopens
    assert isinstance(d.state(), Listening) and d.state().addressed  # type: ignore[union-attr]
    d = Driver()
    speaking(d)
    d.feed(ev.SpeechStarted(57000), 57500)  # a talk-over, no wake word
    d.feed(ev.SpeechEnded(57000 + CONFIG.min_utterance_samples - 1), 61000)
    assert isinstance(d.state(), Listening) and not d.state().addressed  # type: ignore[union-attr]


def test_a_longer_talk_over_is_answered_and_so_is_a_short_request_after_the_echo_tail() -> None:
    d = Driver()
    speaking(d)
    d.feed(ev.SpeechStarted(56000), 57000)
    out = heard_out(d, "What is the date?", 56000, 80000)
    assert any(isinstance(c, cmd.StartReply) for c in out)
    d = Driver()
    speaking(d)
    d.feed(ev.PlaybackDrained(1, 8000), 70000)
    d.feed(ev.WakeDetected("hey_jarvis", 0.9, 70000 + TAIL + 16000), 70000 + TAIL + 16000)
    # Not a talk-over: asked in the quiet, so answered however short (0.5 s).
    out = heard_out(d, "What time?", 70000 + TAIL + 20000, 130000, speech_samples=8000)
    assert not stopped_short(out) and any(isinstance(c, cmd.StartReply) for c in out)


def test_a_stop_phrase_is_checked_first_and_is_not_a_self_interruption() -> None:
    d = Driver()
    turn = ask(d, "how do I end this", 0)
    d.feed(ev.ReplyDelta(turn, "Just say stop. "), 50000)
    d.feed(ev.ReplyFinished(turn), 50001)
    d.feed(chunk(turn, 0, "Just say stop."), 52000)
    d.feed(ev.PlaybackDrained(1, 3000), 60000)
    out = heard_out(d, "Stop.", 60000, 90000)
    assert out == (cmd.CancelTimer("asr", turn + 1), cmd.NoteIgnored("stop phrase 'Stop.': stopped, nothing to answer"))
    assert d.spine.state == Idle() and d.spine.context.own_voice.self_heard_at == ()


def test_an_announcement_cut_by_its_echo_is_not_answered() -> None:
    d = Driver()
    turn = ask(d, "hello", 0)
    d.feed(ev.EngineFailed(turn, "reply", "HTTP 500"), 50000)  # apology: "Sorry, I could not get an answer ..."
    d.feed(chunk(turn + 1, 0, "Sorry, I could not get an answer just now."), 51000)
    d.feed(ev.SpeechStarted(60000), 61000)
    d.feed(ev.PlaybackStopped(1, 9000), 61200)
    out = heard_out(d, "an answer just now", 60000, 90000)
    assert self_heard(out)


# ------------------------------------------------------------------------------------------------ the breaker


def hear_itself(d: Driver, at: int) -> tuple[cmd.Command, ...]:
    """A story whose echo cuts it at `at + 57000` and is transcribed as its own words at `at + 80000`."""
    speaking(d, at)
    d.feed(ev.SpeechStarted(at + 57000), at + 58000)
    d.feed(ev.PlaybackStopped(d.spine.context.next_epoch - 1, 5100), at + 58200)
    return heard_out(d, "There was", at + 57000, at + 80000)


def test_hearing_itself_twice_within_the_window_suspends_voice_barge_in_until_the_canceller_converges() -> None:
    d = Driver()
    hear_itself(d, 0)
    d.feed(ev.TimerFired("listen", 2), 160000)  # the follow-up window lapses
    out = hear_itself(d, 200000)  # 200,000 samples later: within 60 s
    why = (
        "heard itself 2 times within 60 s: only the wake word interrupts until the echo canceller converges again, "
        "or for 60 s"
    )
    assert cmd.VoiceBargeIn(False, why) in out
    assert cmd.StartTimer("breaker", 1, 280000 + CONFIG.breaker_hold_samples) in out
    assert d.spine.state == Idle()  # no follow-up window while only the wake word is trusted
    # A reply now: voice neither pauses nor cuts it; the wake word still does.
    turn = speaking(d, 400000)
    before = d.spine
    suspended = (
        "voice barge-in is suspended (the assistant kept hearing itself): only the wake word interrupts speaking"
    )
    assert d.feed(ev.VoiceHint(457000, 0.95), 457100) == (cmd.NoteIgnored(suspended),)
    assert d.feed(ev.SpeechStarted(457000), 458000) == (cmd.NoteIgnored(suspended),)
    assert d.spine == before
    d.feed(ev.PlaybackDrained(3, 8000), 470000)
    assert d.spine.state == Idle()  # and no follow-up window after it
    # The canceller converges again: voice barge-in is back (and the hold timer is disarmed).
    out = d.feed(ev.EchoCancellerChanged(True, 24.5), 480000)
    assert out == (
        cmd.CancelTimer("breaker", 1),
        cmd.VoiceBargeIn(True, "the echo canceller converged again (ERLE 24.5 dB)"),
    )
    assert d.feed(ev.TimerFired("breaker", 1), 1_240_000) == (
        cmd.NoteIgnored("breaker timer 1 is stale: voice barge-in is not held"),
    )
    turn = speaking(d, 500000)
    d.feed(ev.VoiceHint(557000, 0.95), 557100)
    assert isinstance(d.spine.state, Paused) and d.spine.state.turn == turn


def test_a_tripped_breaker_is_restored_by_its_hold_timer_and_wake_word_still_interrupts() -> None:
    d = Driver()
    hear_itself(d, 0)
    d.feed(ev.TimerFired("listen", 2), 160000)
    hear_itself(d, 200000)
    turn = speaking(d, 400000)
    out = d.feed(ev.WakeDetected("hey_jarvis", 0.9, 457000), 457000)
    assert out[:2] == (cmd.CutPlayback(3), cmd.CancelTurn(turn))
    assert d.spine.state == Listening(turn + 1, 457000, addressed=True)
    # A report of convergence lost does not restore it; the hold time does.
    assert d.feed(ev.EchoCancellerChanged(False, 3.0), 460000)[0] == cmd.NoteIgnored(
        "a fact for the log: hearing tells the user from the echo by the played reference, converged or not "
        "(the canceller only cleans what the voice detector hears)"
    )
    out = d.feed(ev.TimerFired("breaker", 1), 280000 + CONFIG.breaker_hold_samples)
    assert out == (cmd.VoiceBargeIn(True, "the breaker's hold time is over"),)
    assert d.spine.context.own_voice.suspended_since_sample is None


def test_self_hearings_further_apart_than_the_window_do_not_trip_the_breaker() -> None:
    d = Driver()
    hear_itself(d, 0)
    d.feed(ev.TimerFired("listen", 2), 160000)
    out = hear_itself(d, CONFIG.breaker_window_samples)
    assert self_heard(out) and not any(isinstance(c, cmd.VoiceBargeIn) for c in out)
    assert d.spine.context.own_voice.self_heard_at == (CONFIG.breaker_window_samples + 80000,)


def test_with_the_breaker_off_nothing_trips() -> None:
    d = Driver(initial(replace(CONFIG, breaker_self_heard=0)))
    outs = [hear_itself(d, 0), d.feed(ev.TimerFired("listen", 2), 160000), hear_itself(d, 200000)]
    assert not any(isinstance(c, cmd.VoiceBargeIn) for out in outs for c in out)


def test_the_user_talking_on_is_still_heard_while_voice_barge_in_is_suspended_by_the_wake_word() -> None:
    """Suspended voice barge-in leaves the way in untouched: wake word, then the request."""
    d = Driver()
    hear_itself(d, 0)
    d.feed(ev.TimerFired("listen", 2), 160000)
    hear_itself(d, 200000)
    turn = ask(d, "what time is it", 400000)
    assert d.spine.state == Thinking(turn, d.spine.state.reply)  # type: ignore[union-attr]
    assert d.spine.context.memory[-1] == Message("user", "what time is it")


# ---------------------------------------------------------------------------------------- the text helpers


def test_sounded_words_include_a_word_cut_inside_the_fade() -> None:
    spoken = (SpokenChunk(0, "one two three", 3000, (1000, 2000, 3000)),)
    assert sounded_words(spoken, 0) == ()
    assert sounded_words(spoken, 1) == ("one",)
    assert sounded_words(spoken, 1000) == ("one",)
    assert sounded_words(spoken, 1001) == ("one", "two")
    assert sounded_words(spoken, 10**6) == ("one", "two", "three")


@pytest.mark.parametrize(
    ("transcript", "own"),
    [
        ("There was a fox.", True),
        ("was a fox", True),
        ("There, uh, was a fox", True),  # 4 of 5 in order
        ("a fox", True),
        ("fox", True),
        ("once", False),  # one word: only among the last three
        ("there was a dog in my house", False),  # 3 of 7
        ("fox a was there", False),  # the words, but not in order
        ("what time is it", False),
        ("", False),
    ],
)
def test_own_words_match(transcript: str, own: bool) -> None:
    played = ("Once", "upon", "a", "time.", "There", "was", "a", "fox.")
    assert own_words_match(transcript, played, min_fraction=0.6, one_word_tail=3) is own


def test_is_own_voice_needs_both_the_time_and_the_words() -> None:
    d = Driver()
    speaking(d)
    d.feed(ev.PlaybackDrained(1, 8000), 70000)
    ctx = d.spine.context
    assert is_own_voice(ctx, "a fox", 70000 + TAIL)
    assert not is_own_voice(ctx, "a fox", 70000 + TAIL + 1)
    assert not is_own_voice(ctx, "a cat", 70000)
    assert not is_own_voice(initial(CONFIG).context, "a fox", 0)  # it never spoke


def test_own_words_match_a_compound_whisper_split_over_the_echo() -> None:
    """Seen on a real stream at 0 dB under load: the echo of "...there lived a clockmaker named Ada" came back as
    "I love the clock maker named." and, counted word by word (2 of 6), was answered as a request."""
    played = (
        "Once upon a time, in a small village at the edge of a great forest,",
        "there lived a clockmaker named Ada.",
    )
    assert own_words_match("I love the clock maker named.", played, min_fraction=0.6, one_word_tail=3)
    assert not own_words_match("Tell me about the clock.", played, min_fraction=0.6, one_word_tail=3)
