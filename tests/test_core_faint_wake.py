"""A wake word heard faintly near an utterance's start is stripped from its audio (rule 10, `turn.on_faint_wake`).

Scenes as whole values with explicit sample times: a story plays from 52,000 (tests/test_core_own_voice.py's
`speaking`), the user talks over it at 60,000 and speech confirms at 63,200.
"""

from __future__ import annotations

from device.core import commands as cmd
from device.core import events as ev
from device.core.states import Hearing, Idle, Listening, Thinking
from device.core.turn import FAINT_WAKE_WINDOW_SAMPLES
from tests.core_script import CONFIG, Driver
from tests.test_core_own_voice import speaking

ONSET = 60000
PREROLL = CONFIG.preroll_samples


def talked_over(d: Driver) -> Hearing:
    """The user talks over the story from `ONSET`; speech confirmed, the story cut: hearing them."""
    speaking(d)
    d.feed(ev.SpeechStarted(ONSET), ONSET + 3200)
    d.feed(ev.PlaybackStopped(1, 2000), ONSET + 3300)
    state = d.state()
    assert isinstance(state, Hearing) and state.from_sample == ONSET - PREROLL and not state.addressed
    return state


def asr_start(out: tuple[cmd.Command, ...]) -> int:
    (start,) = [c.from_sample for c in out if isinstance(c, cmd.StartAsr)]
    return start


def test_a_faint_wake_word_moves_the_transcription_past_it_and_its_stop_stops() -> None:
    d = Driver()
    turn = talked_over(d).turn
    d.feed(ev.WakeHeardFaintly("hey_jarvis", 0.21, ONSET + 9600), ONSET + 9700)
    d.feed(ev.WakeHeardFaintly("hey_jarvis", 0.38, ONSET + 10880), ONSET + 11000)  # the score rose: later still
    state = d.state()
    assert isinstance(state, Hearing) and state.addressed
    assert state.onset_sample == ONSET  # the talk-over still began while the story played
    out = d.feed(ev.SpeechEnded(ONSET + 18000), ONSET + 29000)
    assert asr_start(out) == ONSET + 10880 - PREROLL
    out = d.feed(ev.TranscriptReady(turn, "Stop.", ONSET + 18000), ONSET + 33000)
    assert d.state() == Idle() and not any(isinstance(c, cmd.StartReply) for c in out)


def test_a_quick_question_after_a_faint_wake_word_is_answered_not_taken_as_a_stop() -> None:
    d = Driver()
    turn = talked_over(d).turn
    d.feed(ev.WakeHeardFaintly("hey_jarvis", 0.3, ONSET + 11000), ONSET + 11100)
    d.feed(ev.SpeechEnded(ONSET + 14000), ONSET + 25000)  # 0.875 s of speech: short
    out = d.feed(ev.TranscriptReady(turn, "What time is it?", ONSET + 14000), ONSET + 29000)
    assert isinstance(d.state(), Thinking) and any(isinstance(c, cmd.StartReply) for c in out)


def test_without_it_the_same_quick_talk_over_is_a_stop() -> None:
    d = Driver()
    turn = talked_over(d).turn
    d.feed(ev.SpeechEnded(ONSET + 14000), ONSET + 25000)
    d.feed(ev.TranscriptReady(turn, "What time is it?", ONSET + 14000), ONSET + 29000)
    assert d.state() == Idle()


def test_a_faint_wake_word_late_in_the_utterance_is_part_of_the_request() -> None:
    d = Driver()
    before = talked_over(d)
    late = ONSET + FAINT_WAKE_WINDOW_SAMPLES + 1
    out = d.feed(ev.WakeHeardFaintly("hey_jarvis", 0.3, late), late + 100)
    assert d.state() == before
    assert out == (cmd.NoteIgnored("a faint wake word away from the utterance's start is part of it"),)


def test_an_early_transcription_that_held_the_wake_word_is_dropped_for_a_fresh_one() -> None:
    d = Driver()
    turn = talked_over(d).turn
    d.feed(ev.SpeechPaused(ONSET + 9000), ONSET + 14000)  # early transcription from the onset's pre-roll
    assert d.state() == Hearing(turn, ONSET, ONSET - PREROLL, early_to_sample=ONSET + 9000)
    d.feed(ev.WakeHeardFaintly("hey_jarvis", 0.25, ONSET + 10000), ONSET + 14100)
    d.feed(ev.TranscriptReady(turn, "And our visit", ONSET + 9000), ONSET + 16000)  # outdated: dropped
    out = d.feed(ev.SpeechEnded(ONSET + 18000), ONSET + 29000)
    assert asr_start(out) == ONSET + 10000 - PREROLL


def test_outside_an_utterance_being_heard_it_changes_nothing() -> None:
    d = Driver()
    assert d.feed(ev.WakeHeardFaintly("hey_jarvis", 0.3, 1000), 1100)[0].reason.startswith("a faint wake word")  # type: ignore[union-attr]
    assert d.state() == Idle()
    d.feed(ev.WakeDetected("hey_jarvis", 0.9, 2000), 2000)
    d.feed(ev.WakeHeardFaintly("hey_jarvis", 0.3, 4000), 4100)
    assert isinstance(d.state(), Listening)
