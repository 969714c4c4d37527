"""A stop (SIGTERM, SIGINT, `systemctl stop`) and a mute (the privacy button, SIGUSR1) in every state a user can
be in: each ends the turn whole, leaves no timer of it armed and no job of it running, and what the turn's jobs
still send afterwards starts nothing (issue 16's fault table; the property test covers random orders, this one
names each state's outcome)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from device.core import commands as cmd
from device.core import events as ev
from device.core.states import Alarm, Degraded, Muted, current_turn
from tests.core_script import Driver, chunk
from tests.core_steps import ask, speaking, wake

TURN_TIMERS = ("listen", "utterance", "confirm", "lookahead", "asr", "tts")
LINE = "Your tea timer is done."


def to_ringing(d: Driver) -> None:
    d.spine = replace(d.spine, context=replace(d.spine.context, alarms_armed=(Alarm(1, "tea"),)))
    d.feed(ev.TimerFired("alarm", 1), 1000)
    turn = d.spine.state.turn  # type: ignore[union-attr]
    d.feed(chunk(turn, 0, LINE), 2000)
    d.feed(ev.PlaybackDrained(d.spine.state.epoch, 5000), 8000)  # type: ignore[union-attr]


SCENES: dict[str, Callable[[Driver], object]] = {
    "Idle": lambda d: None,
    "Listening": lambda d: wake(d, 0),
    "Hearing": lambda d: (wake(d, 0), d.feed(ev.SpeechStarted(4000), 8000)),
    "Transcribing": lambda d: (wake(d, 0), d.feed(ev.SpeechStarted(4000), 8000), d.feed(ev.SpeechEnded(30000), 40000)),
    "Thinking": lambda d: (ask(d, "tell me a story", 0), d.feed(ev.ReplyDelta(1, "Once upon a time. "), 46000)),
    "Speaking": speaking,
    "Paused": lambda d: (speaking(d), d.feed(ev.VoiceHint(60000, 0.8), 61024)),
    "Announcing": lambda d: (ask(d, "hello", 0), d.feed(ev.EngineFailed(1, "reply", "HTTP 500"), 50000)),
    "Ringing": to_ringing,
    "Degraded": lambda d: d.feed(ev.AudioDeviceLost("stream error"), 1000),
    "Muted": lambda d: d.feed(ev.MuteChanged(True, "SIGUSR1"), 1000),
}
LATE = 200000
"""When the turn's jobs report after the stop or mute (they were cancelled; a result may cross the cancel)."""


def armed_turn_timers(d: Driver, turn: int) -> set[tuple[str, int]]:
    armed: set[tuple[str, int]] = set()
    for _, event, _, commands in d.history:
        if isinstance(event, ev.TimerFired):
            armed.discard((event.kind, event.ref))
        for c in commands:
            if isinstance(c, cmd.StartTimer):
                armed.add((c.kind, c.ref))
            elif isinstance(c, cmd.CancelTimer):
                armed.discard((c.kind, c.ref))
    return {(kind, ref) for kind, ref in armed if kind in TURN_TIMERS and ref == turn}


def late_results(turn: int) -> list[ev.Event]:
    return [
        ev.TranscriptReady(turn, "tell me a story", 30000),
        ev.ReplyDelta(turn, "There was a fox. "),
        ev.ReplyFinished(turn),
        chunk(turn, 5, "There was a fox."),
        ev.TimerFired("tts", turn),
    ]


def started_work(commands: tuple[cmd.Command, ...]) -> list[cmd.Command]:
    work = (cmd.StartAsr, cmd.StartReply, cmd.StartTts, cmd.OpenPlayback, cmd.QueuePlayback)
    return [c for c in commands if isinstance(c, work)]


@pytest.mark.parametrize("where", list(SCENES))
def test_a_stop_in_every_state_ends_the_turn_whole(where: str) -> None:
    d = Driver()
    SCENES[where](d)
    assert type(d.state()).__name__ == where
    turn = current_turn(d.state())
    out = d.feed(ev.StopRequested("SIGTERM"), 100000)
    assert type(d.state()).__name__ == "Stopping"
    if turn is not None:
        assert cmd.CancelTurn(turn) in out
        assert armed_turn_timers(d, turn) == set()
    if where in ("Speaking", "Paused", "Announcing"):
        assert any(isinstance(c, cmd.CutPlayback) for c in out)
    assert not [c for c in out if isinstance(c, cmd.StartTimer)]  # nothing new is armed on the way out
    for event in late_results(turn or 0):
        assert started_work(d.feed(event, LATE)) == [] and type(d.state()).__name__ == "Stopping"


@pytest.mark.parametrize("where", [s for s in SCENES if s != "Muted"])
def test_a_mute_in_every_state_ends_the_turn_and_turns_the_mic_off(where: str) -> None:
    d = Driver()
    SCENES[where](d)
    assert type(d.state()).__name__ == where
    turn = current_turn(d.state())
    out = d.feed(ev.MuteChanged(True, "SIGUSR1"), 100000)
    assert cmd.SetMicrophone(False) in out
    if where == "Degraded":  # no card: it stays waiting for it, and rests muted once it is back
        assert d.state() == Degraded("stream error", 1, "muted")
        return
    assert d.state() == Muted()
    if turn is not None:
        assert cmd.CancelTurn(turn) in out and armed_turn_timers(d, turn) == set()
    for event in late_results(turn or 0):
        assert started_work(d.feed(event, LATE)) == [] and d.state() == Muted()
    out = d.feed(ev.MuteChanged(False, "SIGUSR2"), LATE + 1000)
    assert cmd.SetMicrophone(True) in out and type(d.state()).__name__ == "Idle"
