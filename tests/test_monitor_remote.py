"""Remote control enters as events of the machine: the messages map to events, and the table decides them."""

from __future__ import annotations

import pytest

from device.core import commands as cmd
from device.core import events as ev
from device.core.states import Idle, Listening
from device.monitor.remote import MAX_TYPED_CHARS, ControlRefused, control_event
from tests.core_script import Driver
from tests.core_steps import speaking


def test_control_messages_become_events_or_are_refused_with_the_reason() -> None:
    assert control_event({"type": "mute", "muted": False}) == ev.MuteChanged(False, "monitor")
    assert control_event({"type": "barge_in"}) == ev.BargeInRequested("monitor")
    with pytest.raises(ControlRefused, match="true or false"):
        control_event({"type": "mute"})
    with pytest.raises(ControlRefused, match="unknown control"):
        control_event({"type": "reboot"})


def test_typed_text_is_checked_at_the_edge() -> None:
    assert control_event({"type": "say", "text": "  what time is it\n"}) == ev.TextTyped("what time is it", "monitor")
    assert control_event({"type": "say", "text": "é" * MAX_TYPED_CHARS}) == ev.TextTyped("é" * 500, "monitor")
    for bad, phrase in (
        ({"type": "say"}, "as a string"),
        ({"type": "say", "text": 7}, "as a string"),
        ({"type": "say", "text": " \t\n "}, "empty"),
        ({"type": "say", "text": "x" * (MAX_TYPED_CHARS + 1)}, "at most 500"),
        ({"type": "say", "text": "what\ntime"}, r"U\+000A"),
        ({"type": "say", "text": "a\x1b[2Jb"}, r"U\+001B"),
        ({"type": "say", "text": "left\u202eright"}, r"U\+202E"),
    ):
        with pytest.raises(ControlRefused, match=phrase):
            control_event(bad)


def test_a_requested_barge_in_cuts_the_reply_and_listens_like_the_wake_word() -> None:
    d = Driver()
    turn = speaking(d)
    out = d.feed(ev.BargeInRequested("monitor"), 60000)
    assert isinstance(d.spine.state, Listening) and d.spine.state.turn == turn + 1
    assert cmd.CancelTurn(turn) in out and any(isinstance(c, cmd.CutPlayback) for c in out)


def test_a_requested_barge_in_with_nothing_to_interrupt_is_ignored_with_a_reason() -> None:
    d = Driver()
    out = d.feed(ev.BargeInRequested("monitor"), 1000)
    assert isinstance(d.spine.state, Idle)
    assert out == (cmd.NoteIgnored("a barge-in was requested, but nothing of a turn's answer runs in Idle"),)
