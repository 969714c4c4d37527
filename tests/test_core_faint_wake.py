"""A wake word heard faintly near an utterance's start is stripped from its audio (rule 10, `turn.on_faint_wake`).

Scenes as whole values with explicit sample times: a story plays from 52,000 (tests/test_core_own_voice.py's
`speaking`), the user talks over it at 60,000 and speech confirms at 63,200.
"""

from __future__ import annotations

import pytest

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
    d.feed(ev.WakeHeardFaintly("hey_jarvis", 0.21, ONSET + 9600, ONSET + 4000), ONSET + 9700)  # "Hey | Jarvis"
    d.feed(ev.WakeHeardFaintly("hey_jarvis", 0.38, ONSET + 16640, ONSET + 11000), ONSET + 16700)  # "Jarvis, | stop"
    state = d.state()
    assert isinstance(state, Hearing) and state.addressed
    assert state.onset_sample == ONSET  # the talk-over still began while the story played
    out = d.feed(ev.SpeechEnded(ONSET + 18000), ONSET + 29000)
    assert asr_start(out) == ONSET + 11000  # from the pause after the wake word; its score peaked later
    out = d.feed(ev.TranscriptReady(turn, "Stop.", ONSET + 18000), ONSET + 33000)
    assert d.state() == Idle() and not any(isinstance(c, cmd.StartReply) for c in out)


def test_a_quick_question_after_a_faint_wake_word_is_answered_not_taken_as_a_stop() -> None:
    d = Driver()
    turn = talked_over(d).turn
    d.feed(ev.WakeHeardFaintly("hey_jarvis", 0.3, ONSET + 13000, ONSET + 9000), ONSET + 13100)
    d.feed(ev.SpeechEnded(ONSET + 14000), ONSET + 25000)  # 0.875 s of speech: short
    out = d.feed(ev.TranscriptReady(turn, "What time is it?", ONSET + 14000), ONSET + 29000)
    assert isinstance(d.state(), Thinking) and any(isinstance(c, cmd.StartReply) for c in out)


def test_without_it_the_same_quick_talk_over_is_a_stop() -> None:
    d = Driver()
    turn = talked_over(d).turn
    d.feed(ev.SpeechEnded(ONSET + 14000), ONSET + 25000)
    d.feed(ev.TranscriptReady(turn, "What time is it?", ONSET + 14000), ONSET + 29000)
    assert d.state() == Idle()


@pytest.mark.parametrize(
    "words_from",
    [ONSET + FAINT_WAKE_WINDOW_SAMPLES + 1, ONSET, ONSET - 8000],  # late; the pause is the one before the onset
)
def test_a_faint_wake_word_with_no_pause_after_it_near_the_start_is_part_of_the_request(words_from: int) -> None:
    d = Driver()
    before = talked_over(d)
    out = d.feed(ev.WakeHeardFaintly("hey_jarvis", 0.3, ONSET + 20000, words_from), ONSET + 20100)
    assert d.state() == before
    assert len(out) == 1 and isinstance(out[0], cmd.NoteIgnored) and "heard whole" in out[0].reason


def test_an_early_transcription_that_held_the_wake_word_is_dropped_for_a_fresh_one() -> None:
    d = Driver()
    turn = talked_over(d).turn
    d.feed(ev.SpeechPaused(ONSET + 9000), ONSET + 14000)  # early transcription from the onset's pre-roll
    assert d.state() == Hearing(turn, ONSET, ONSET - PREROLL, early_to_sample=ONSET + 9000)
    d.feed(ev.WakeHeardFaintly("hey_jarvis", 0.25, ONSET + 12000, ONSET + 10000), ONSET + 14100)
    d.feed(ev.TranscriptReady(turn, "And our visit", ONSET + 9000), ONSET + 16000)  # outdated: dropped
    out = d.feed(ev.SpeechEnded(ONSET + 18000), ONSET + 29000)
    assert asr_start(out) == ONSET + 10000


def test_outside_an_utterance_being_heard_it_changes_nothing() -> None:
    d = Driver()
    (note,) = d.feed(ev.WakeHeardFaintly("hey_jarvis", 0.3, 1000, 500), 1100)
    assert isinstance(note, cmd.NoteIgnored) and "rule 10" in note.reason and d.state() == Idle()
    d.feed(ev.WakeDetected("hey_jarvis", 0.9, 2000), 2000)
    d.feed(ev.WakeHeardFaintly("hey_jarvis", 0.3, 4000, 3000), 4100)
    assert isinstance(d.state(), Listening)
