"""Remote control: a data-channel message from an admin browser -> the event the machine steps.

The monitor never acts on the assistant itself: each control enters the inbox as an event (logged and
replayable like any other), and the machine's table decides what it does in the state it finds. Messages are
JSON objects: `{"type": "mute", "muted": true}`, `{"type": "say", "text": "..."}`, `{"type": "barge_in"}`.
"""

from __future__ import annotations

from typing import Any

from device.core.events import BargeInRequested, Event, MuteChanged

SOURCE = "monitor"
MAX_TYPED_CHARS = 500

REMOTE_BARGE_IN_TYPES: tuple[type[Event], ...] = (BargeInRequested,)
"""Events by which a browser asks to interrupt the assistant (counted as barge-ins of the signal `remote`)."""

CONTROL_TYPES = ("mute", "say", "barge_in")


class ControlRefused(ValueError):
    """A control message that cannot become an event; the text says why and goes back to the browser."""


def control_event(message: dict[str, Any]) -> Event:
    """The event a control message asks for, or `ControlRefused` with the reason."""
    kind = message.get("type")
    if kind == "mute":
        muted = message.get("muted")
        if not isinstance(muted, bool):
            raise ControlRefused('"mute" needs "muted": true or false')
        return MuteChanged(muted, SOURCE)
    if kind == "barge_in":
        return BargeInRequested(SOURCE)
    if kind in CONTROL_TYPES:
        raise ControlRefused(f'"{kind}" is not supported by this version of the machine')
    raise ControlRefused(f'unknown control "{kind}"; one of: {", ".join(CONTROL_TYPES)}')
