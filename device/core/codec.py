"""Events and commands to and from plain JSON values, for the event log and replay.

The encoding is `{"type": ClassName, field: value, ...}` with tuples as lists; decoding turns lists back
into tuples (every sequence field of the vocabulary is a tuple). Key order is the field order, so the same
value always encodes to the same bytes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from device.core.commands import COMMAND_TYPES, Command
from device.core.events import EVENT_TYPES, Event
from device.core.memory import Message

JsonValue = Any  # what json.dumps accepts; nested, so not worth spelling out

_TYPES: dict[str, type[Any]] = {t.__name__: t for t in (*EVENT_TYPES, *COMMAND_TYPES, Message)}


class DecodeError(ValueError):
    """A log record does not describe a known event or command."""


def encode(value: Any) -> JsonValue:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, JsonValue] = {"type": type(value).__name__}
        for f in dataclasses.fields(value):
            out[f.name] = encode(getattr(value, f.name))
        return out
    if isinstance(value, tuple | list):
        return [encode(v) for v in value]
    return value


MAX_DEPTH = 16
"""How deep a record may nest; the vocabulary goes four levels deep (a command, its history, a message, a field)."""


def decode(value: JsonValue, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:  # refused before Python's recursion limit could be reached
        raise DecodeError(f"nested deeper than {MAX_DEPTH} levels: not a spine record")
    if isinstance(value, list):
        return tuple(decode(v, depth + 1) for v in value)
    if isinstance(value, dict):
        name = value.get("type")
        cls = _TYPES.get(name) if isinstance(name, str) else None
        if cls is None:
            raise DecodeError(f"unknown record type {name!r}")
        fields = {k: decode(v, depth + 1) for k, v in value.items() if k != "type"}
        try:
            return cls(**fields)
        except TypeError as error:
            raise DecodeError(f"bad {name}: {error}") from None
    return value


def decode_event(value: JsonValue) -> Event:
    event = decode(value)
    if not isinstance(event, EVENT_TYPES):
        raise DecodeError(f"not an event: {value!r}")
    return event


def decode_commands(value: JsonValue) -> tuple[Command, ...]:
    commands = decode(value)
    if not isinstance(commands, tuple) or not all(isinstance(c, COMMAND_TYPES) for c in commands):
        raise DecodeError(f"not a list of commands: {value!r}")
    return commands
