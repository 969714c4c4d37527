"""Steps the scripted core scenario tests share, with explicit sample times: the wake word, a whole question, a
reply speaking."""

from __future__ import annotations

from device.core import commands as cmd
from device.core import events as ev
from tests.core_script import Driver, chunk


def wake(d: Driver, now: int) -> tuple[cmd.Command, ...]:
    return d.feed(ev.WakeDetected("hey_jarvis", 0.9, now), now)


def ask(d: Driver, text: str, at: int) -> int:
    """Wake, speak, end, transcribe: returns the turn now thinking."""
    wake(d, at)
    d.feed(ev.SpeechStarted(at + 4000), at + 8000)
    d.feed(ev.SpeechEnded(at + 30000), at + 40000)
    turn = d.spine.state.turn  # type: ignore[union-attr]
    d.feed(ev.TranscriptReady(turn, text, at + 30000), at + 45000)
    return turn


def speaking(d: Driver) -> int:
    """Ask for a story and let its first two sentences play: returns the speaking turn (epoch 1)."""
    turn = ask(d, "tell me a story", 0)
    d.feed(ev.ReplyDelta(turn, "Once upon a time. There was a fox. "), 50000)
    d.feed(chunk(turn, 0, "Once upon a time."), 52000)
    d.feed(chunk(turn, 1, "There was a fox."), 53000)
    return turn
