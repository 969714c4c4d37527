"""Remote control: a data-channel message from an admin browser -> the event the machine steps.

The monitor never acts on the assistant itself: each control enters the inbox as an event (logged and
replayable like any other), and the machine's table decides what it does in the state it finds. Messages are
JSON objects: `{"type": "mute", "muted": true}`, `{"type": "say", "text": "..."}`, `{"type": "barge_in"}`.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from device.core.events import BargeInRequested, Event, MuteChanged, TextTyped

SOURCE = "monitor"
MAX_TYPED_CHARS = 500

REMOTE_BARGE_IN_TYPES: tuple[type[Event], ...] = (BargeInRequested, TextTyped)
"""Events by which a browser may interrupt the assistant (counted as barge-ins of the signal `remote` when they
cut its voice)."""

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
    if kind == "say":
        return TextTyped(typed_text(message.get("text")), SOURCE)
    raise ControlRefused(f'unknown control "{kind}"; one of: {", ".join(CONTROL_TYPES)}')


def typed_text(text: object) -> str:
    """The text of a `say` message, checked: a string, not blank, at most `MAX_TYPED_CHARS` characters after
    stripping, and no control characters (a line break or an escape is not something a user says)."""
    if not isinstance(text, str):
        raise ControlRefused('"say" needs "text": the words to answer, as a string')
    text = text.strip()
    if not text:
        raise ControlRefused('"say" needs some words: "text" is empty')
    if len(text) > MAX_TYPED_CHARS:
        raise ControlRefused(f'"say" text is {len(text)} characters; at most {MAX_TYPED_CHARS}')
    bad = next((c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Cs")), None)
    if bad is not None:
        raise ControlRefused(
            f'"say" text holds the control or format character U+{ord(bad):04X}; send plain words on one line'
        )
    return text
