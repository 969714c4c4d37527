"""Conversation memory keeps the last `[reply] memory_turns` exchanges (`CoreConfig.memory_messages`), whole: an
assistant that listens all day must not send its whole day with every request (found by the soak, issue 16)."""

from __future__ import annotations

from dataclasses import replace

from device.core import commands as cmd
from device.core import events as ev
from device.core.memory import Message
from device.core.states import initial
from tests.core_script import CONFIG, Driver, chunk
from tests.core_steps import ask

EXCHANGE_SAMPLES = 200_000


def exchange(d: Driver, index: int) -> tuple[cmd.Command, ...]:
    """Question `index` asked and its one-sentence answer heard to its end; the commands that asked for it."""
    at = index * EXCHANGE_SAMPLES
    before = len(d.spine.context.memory)
    turn = ask(d, f"question {index}", at)
    asked = d.history[-1][3]
    d.feed(ev.ReplyDelta(turn, f"Answer {index}."), at + 46000)
    d.feed(ev.ReplyFinished(turn), at + 46100)
    opened = d.feed(chunk(turn, 0, f"Answer {index}."), at + 48000)
    epoch = next(c.epoch for c in opened if isinstance(c, cmd.OpenPlayback))
    d.feed(ev.PlaybackDrained(epoch, 2000), at + 51000)
    d.feed(ev.TimerFired("listen", turn + 1), at + 140000)  # the follow-up window closes unused
    assert len(d.spine.context.memory) in (before + 2, before)  # before: the oldest exchange made room
    return asked


def test_memory_keeps_the_last_exchanges_whole_and_each_request_sends_at_most_them() -> None:
    d = Driver(initial(replace(CONFIG, memory_messages=4)))
    for index in range(5):
        asked = exchange(d, index)
        start = next(c for c in asked if isinstance(c, cmd.StartReply))
        assert len(start.history) == min(2 * index, 4)  # the last two exchanges, then no more
    assert d.spine.context.memory == (
        Message("user", "question 3"),
        Message("assistant", "Answer 3."),
        Message("user", "question 4"),
        Message("assistant", "Answer 4."),
    )


def test_no_memory_sends_each_request_alone() -> None:
    d = Driver(initial(replace(CONFIG, memory_messages=0)))
    for index in range(2):
        start = next(c for c in exchange(d, index) if isinstance(c, cmd.StartReply))
        assert start.history == ()
    assert d.spine.context.memory == ()
