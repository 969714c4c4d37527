"""Typed text (`TextTyped`, the monitor's admin "say"): answered as a transcript of a new turn from a resting or
listening state; in a busy state it interrupts as the wake word would, if the barge-in matrix lets it."""

from __future__ import annotations

from dataclasses import replace

from device.core import commands as cmd
from device.core import events as ev
from device.core.memory import Message
from device.core.states import BargeInMatrix, BargeInRule, Idle, Muted, Reply, Thinking, initial
from tests.core_script import CONFIG, Driver
from tests.core_steps import ask, speaking, wake
from tests.test_core_stop_and_ring import gap

TIME = "what time is it"


def typed(text: str) -> ev.TextTyped:
    return ev.TextTyped(text, "monitor")


def test_typed_text_in_idle_is_answered_in_a_new_turn() -> None:
    d = Driver()
    out = d.feed(typed("  what   time is it "), 1000)
    assert d.spine.state == Thinking(1, Reply(TIME))
    assert out == (cmd.StartReply(1, TIME, ()),)
    assert d.spine.context.memory == (Message("user", TIME),)


def test_typed_text_while_listening_takes_the_place_of_the_utterance() -> None:
    d = Driver()
    wake(d, 0)
    out = d.feed(typed(TIME), 5000)
    assert out == (cmd.CancelTurn(1), cmd.CancelTimer("listen", 1), cmd.StartReply(2, TIME, ()))
    assert d.spine.state == Thinking(2, Reply(TIME))


def test_typed_text_over_a_reply_cuts_it_and_is_answered_even_if_it_repeats_the_reply() -> None:
    d = Driver()
    turn = speaking(d)
    # Spoken, these words would be taken for its own echo; typed, they are the user's.
    out = d.feed(typed("There was a fox"), 60000)
    state = d.spine.state
    assert isinstance(state, Thinking) and state.turn == turn + 1 and state.reply == Reply("There was a fox")
    assert state.held and out == (cmd.CutPlayback(1), cmd.CancelTurn(turn))  # asked once the heard text is known
    out = d.feed(ev.PlaybackStopped(1, 3000), 60160)
    heard = cmd.CommitHeard(turn, "Once upon a time. There was a fox.", "Once upon a", interrupted=True)
    assert out == (
        heard,
        cmd.StartReply(
            turn + 1,
            "There was a fox",
            (Message("user", "tell me a story"), Message("assistant", "Once upon a", interrupted=True)),
        ),
    )
    assert d.spine.state == Thinking(turn + 1, Reply("There was a fox"))
    assert [m.role for m in d.spine.context.memory] == ["user", "assistant", "user"]


def test_typed_text_held_for_the_cut_gives_way_to_the_next_barge_in_and_leaves_no_half_turn() -> None:
    d = Driver()
    turn = speaking(d)
    d.feed(typed("What time is it?"), 60000)
    out = d.feed(typed("Stop."), 60050)  # before the cut was reported: the held request is dropped, never asked
    assert out[:1] == (cmd.CancelTurn(turn + 1),) and d.spine.state == Idle()
    d.feed(ev.PlaybackStopped(1, 3000), 60160)
    assert d.spine.context.memory == (
        Message("user", "tell me a story"),
        Message("assistant", "Once upon a", interrupted=True),
    )


def test_a_typed_stop_phrase_stops_the_reply_and_answers_nothing() -> None:
    d = Driver()
    speaking(d)
    out = d.feed(typed("Stop."), 60000)
    assert d.spine.state == Idle()
    assert out[:2] == (cmd.CutPlayback(1), cmd.CancelTurn(1))
    assert out[-1] == cmd.NoteIgnored("stop phrase 'Stop.': stopped, nothing to answer")
    assert not any(isinstance(c, cmd.StartReply) for c in out)


def test_typed_text_is_ignored_where_the_matrix_does_not_let_the_wake_word_interrupt() -> None:
    matrix = replace(BargeInMatrix(), thinking=BargeInRule(wake=False, speech=False))
    d = Driver(initial(replace(CONFIG, barge_in=matrix)))
    ask(d, "tell me a story", 0)
    before = d.spine
    out = d.feed(typed(TIME), 50000)
    assert d.spine == before
    why = "the barge-in matrix does not let the wake word interrupt thinking, so typed text does not either"
    assert out == (cmd.NoteIgnored(why),)


def test_a_typed_request_silences_a_ringing_timer() -> None:
    d = Driver()
    gap(d)
    out = d.feed(typed(TIME), 12000)
    assert out[0] == cmd.CancelTimer("ring", 1) and isinstance(out[-1], cmd.StartReply)
    assert isinstance(d.spine.state, Thinking) and d.spine.context.ring is None


def test_typed_text_while_muted_is_ignored_with_a_reason() -> None:
    d = Driver()
    d.feed(ev.MuteChanged(True, "monitor"), 1000)
    assert isinstance(d.spine.state, Muted)
    out = d.feed(typed(TIME), 2000)
    assert isinstance(d.spine.state, Muted)
    assert out == (cmd.NoteIgnored("muted: nothing is answered until the user unmutes"),)
