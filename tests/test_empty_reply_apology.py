"""A reply that finishes without a word is a failed reply: Spine says the reply apology instead of going back
to rest in silence (issue 11, case 2). Pure core, explicit sample times."""

from __future__ import annotations

import pytest

from device.core import commands as cmd
from device.core import events as ev
from device.core.memory import Message
from device.core.moves import APOLOGIES
from device.core.states import Announcing, Idle, Thinking
from tests.core_script import CONFIG, Driver, chunk

SORRY = APOLOGIES["reply"]


def thinking(d: Driver, prompt: str) -> int:
    """Wake, speak, end, transcribe: the turn now waiting for its reply."""
    d.feed(ev.WakeDetected("hey_jarvis", 0.9, 0), 0)
    d.feed(ev.SpeechStarted(4000), 8000)
    d.feed(ev.SpeechEnded(30000), 40000)
    turn = d.spine.state.turn  # type: ignore[union-attr]
    d.feed(ev.TranscriptReady(turn, prompt, 30000), 45000)
    assert isinstance(d.state(), Thinking)
    return turn


@pytest.mark.parametrize("deltas", [(), ("",), ("  ", "\n")], ids=["no text", "empty text", "white space"])
def test_a_reply_finished_without_a_word_says_the_apology_then_rests(deltas: tuple[str, ...]) -> None:
    d = Driver()
    turn = thinking(d, "hello")
    for text in deltas:
        assert d.feed(ev.ReplyDelta(turn, text), 46000) == ()
    out = d.feed(ev.ReplyFinished(turn), 50000)
    assert d.state() == Announcing(turn + 1, 1, SORRY)
    assert out == (
        cmd.CommitHeard(turn, "", "", interrupted=False),
        cmd.OpenPlayback(1, turn + 1),
        cmd.StartTts(turn + 1, 0, SORRY),
        cmd.StartTimer("tts", turn + 1, 50000 + CONFIG.tts_timeout_samples),  # synthesis must answer by then
    )
    d.feed(chunk(turn + 1, 0, SORRY), 52000)
    d.feed(ev.PlaybackDrained(1, 8000), 62000)
    assert d.state() == Idle()
    # Memory keeps the roles alternating; the apology itself is not part of the conversation.
    assert d.spine.context.memory == (Message("user", "hello"), Message("assistant", ""))


def test_a_reply_with_words_is_still_spoken_as_it_was() -> None:
    d = Driver()
    turn = thinking(d, "hello")
    d.feed(ev.ReplyDelta(turn, "Hi there."), 46000)
    assert d.feed(ev.ReplyFinished(turn), 50000) == (
        cmd.StartTts(turn, 0, "Hi there."),
        cmd.StartTimer("tts", turn, 50000 + CONFIG.tts_timeout_samples),
    )
