"""The OpenAI Realtime protocol's events (the GA protocol, as spoken over WebRTC's `oai-events` data channel), as
typed, validated data: what the device sends (client events) and what the server sends (server events), each
way to and from JSON. The device's client (device/reply/realtime_client.py) and the test peer
(device/testing/realtime_peer.py) both use it; docs/realtime.md has the protocol notes.

Untrusted JSON is parsed here, at the edge, into frozen dataclasses:

* an event whose `type` is known must have the fields Spine relies on, of the right JSON type, or parsing raises
  `RealtimeProtocolError` naming the event, the field and what was wrong (never a KeyError or a crash);
* an event whose `type` is not known is kept as `OtherServerEvent` / `OtherClientEvent` with its data, so a
  server that adds events (`rate_limits.updated`, `response.content_part.added`, ...) does not break the client;
* fields Spine does not use are ignored, and optional ones default, as the protocol lets servers omit them.

Only the events Spine's turn logic needs are typed; everything else the protocol has travels as "other".
Text that came from the other side is never interpreted, only carried; messages quote only field names and
JSON types, never the values, so a hostile peer cannot forge a log line through an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from device.reply.openai_config import printable

MAX_EVENT_CHARS = 262_144
"""The longest event accepted: the data channel's maximum message size (aiortc and browsers offer 256 KiB)."""

TURN_DETECTION_OFF = "off"
"""`SessionConfig.turn_detection` for JSON null: the server detects no turns, the client commits and asks."""


class RealtimeProtocolError(ValueError):
    """A message that is not a valid event of the protocol; the message says which field and what is wrong."""


# ------------------------------------------------------------------------------------------------ client events


@dataclass(frozen=True)
class SessionConfig:
    """The part of a realtime session's configuration Spine sets (`session.update`'s `session`)."""

    instructions: str | None = None
    """The system instructions; None leaves the server's."""
    voice: str | None = None
    """The output voice, e.g. "marin"; None leaves the server's."""
    turn_detection: str | None = TURN_DETECTION_OFF
    """`TURN_DETECTION_OFF`: JSON null, no server turn detection (Spine's endpointer decides); a string: the
    server VAD's type ("server_vad", "semantic_vad"); None: not sent (the server's setting stays)."""


@dataclass(frozen=True)
class SessionUpdate:
    session: SessionConfig
    event_id: str | None = None
    type: ClassVar[str] = "session.update"


@dataclass(frozen=True)
class InputAudioBufferCommit:
    """Make the audio received since the last commit or clear a user message (turn detection off)."""

    event_id: str | None = None
    type: ClassVar[str] = "input_audio_buffer.commit"


@dataclass(frozen=True)
class InputAudioBufferClear:
    event_id: str | None = None
    type: ClassVar[str] = "input_audio_buffer.clear"


@dataclass(frozen=True)
class ResponseCreate:
    instructions: str | None = None
    """Instructions for this response only; None uses the session's."""
    event_id: str | None = None
    type: ClassVar[str] = "response.create"


@dataclass(frozen=True)
class ResponseCancel:
    """Stop generating a response; the server's audio already buffered still plays unless cleared."""

    response_id: str | None = None
    """None: the response in progress, whichever it is."""
    event_id: str | None = None
    type: ClassVar[str] = "response.cancel"


@dataclass(frozen=True)
class OutputAudioBufferClear:
    """WebRTC only: stop sending the audio the server has buffered for the client, at once."""

    event_id: str | None = None
    type: ClassVar[str] = "output_audio_buffer.clear"


@dataclass(frozen=True)
class ConversationItemTruncate:
    """Cut an assistant item's audio at `audio_end_ms`: its text transcript is deleted, and the model's context
    keeps only the audio up to there (what the user heard)."""

    item_id: str
    audio_end_ms: int
    content_index: int = 0
    event_id: str | None = None
    type: ClassVar[str] = "conversation.item.truncate"


@dataclass(frozen=True)
class ConversationItemCreate:
    """A text message added to the conversation (typed text, or memory carried across a reconnect)."""

    text: str
    role: str = "user"
    """"user", "assistant" or "system"."""
    event_id: str | None = None
    type: ClassVar[str] = "conversation.item.create"


@dataclass(frozen=True)
class OtherClientEvent:
    """A client event Spine does not model (the test peer records it and answers as the real server would)."""

    type: str
    data: Mapping[str, Any] = field(repr=False)
    event_id: str | None = None


ClientEvent = (
    SessionUpdate
    | InputAudioBufferCommit
    | InputAudioBufferClear
    | ResponseCreate
    | ResponseCancel
    | OutputAudioBufferClear
    | ConversationItemTruncate
    | ConversationItemCreate
    | OtherClientEvent
)

# ------------------------------------------------------------------------------------------------ server events


@dataclass(frozen=True)
class SessionInfo:
    """What a server says of its session (`session.created`, `session.updated`): the fields Spine checks."""

    id: str | None = None
    model: str | None = None
    instructions: str | None = None
    voice: str | None = None
    turn_detection: str | None = None
    """`TURN_DETECTION_OFF` when the server reports null, the VAD's type when on, None when not reported."""


@dataclass(frozen=True)
class ItemInfo:
    """A conversation item as announced: its id (the one `conversation.item.truncate` names) and kind."""

    id: str
    type: str | None = None
    role: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class ResponseInfo:
    id: str
    status: str | None = None
    """"in_progress", then "completed", "cancelled", "failed" or "incomplete" in `response.done`."""
    reason: str | None = None
    """Why it did not complete: "client_cancelled", "turn_detected", "max_output_tokens", "content_filter"."""
    error_code: str | None = None
    """For a failed response, the error's code if the server gave one."""
    output_item_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ErrorInfo:
    type: str
    """e.g. "invalid_request_error", "server_error"."""
    message: str
    code: str | None = None
    """e.g. "response_cancel_not_active", "invalid_value", "input_audio_buffer_commit_empty"."""
    param: str | None = None
    event_id: str | None = None
    """The `event_id` of the client event that caused it, if the client gave one."""


@dataclass(frozen=True)
class SessionCreated:
    session: SessionInfo
    event_id: str | None = None
    type: ClassVar[str] = "session.created"


@dataclass(frozen=True)
class SessionUpdated:
    session: SessionInfo
    event_id: str | None = None
    type: ClassVar[str] = "session.updated"


@dataclass(frozen=True)
class InputAudioBufferCommitted:
    item_id: str
    """The user message item made of the committed audio."""
    previous_item_id: str | None = None
    event_id: str | None = None
    type: ClassVar[str] = "input_audio_buffer.committed"


@dataclass(frozen=True)
class InputAudioBufferCleared:
    event_id: str | None = None
    type: ClassVar[str] = "input_audio_buffer.cleared"


@dataclass(frozen=True)
class ResponseCreated:
    response: ResponseInfo
    event_id: str | None = None
    type: ClassVar[str] = "response.created"


@dataclass(frozen=True)
class ResponseOutputItemAdded:
    response_id: str
    item: ItemInfo
    output_index: int = 0
    event_id: str | None = None
    type: ClassVar[str] = "response.output_item.added"


@dataclass(frozen=True)
class ResponseOutputItemDone:
    response_id: str
    item: ItemInfo
    output_index: int = 0
    event_id: str | None = None
    type: ClassVar[str] = "response.output_item.done"


@dataclass(frozen=True)
class TranscriptDelta:
    """`response.output_audio_transcript.delta`: more of the text of what the model says (ahead of the audio:
    the server generates faster than real time)."""

    response_id: str
    item_id: str
    delta: str
    output_index: int = 0
    content_index: int = 0
    event_id: str | None = None
    type: ClassVar[str] = "response.output_audio_transcript.delta"


@dataclass(frozen=True)
class TranscriptDone:
    """`response.output_audio_transcript.done`: the whole transcript generated (also for a cancelled response)."""

    response_id: str
    item_id: str
    transcript: str
    output_index: int = 0
    content_index: int = 0
    event_id: str | None = None
    type: ClassVar[str] = "response.output_audio_transcript.done"


@dataclass(frozen=True)
class OutputAudioBufferStarted:
    """WebRTC only: the server began sending a response's audio on the media track."""

    response_id: str | None = None
    event_id: str | None = None
    type: ClassVar[str] = "output_audio_buffer.started"


@dataclass(frozen=True)
class OutputAudioBufferStopped:
    """WebRTC only: the response's audio has all been sent (after `response.done`)."""

    response_id: str | None = None
    event_id: str | None = None
    type: ClassVar[str] = "output_audio_buffer.stopped"


@dataclass(frozen=True)
class OutputAudioBufferCleared:
    """WebRTC only: the audio buffered for the client was dropped (`output_audio_buffer.clear`)."""

    response_id: str | None = None
    event_id: str | None = None
    type: ClassVar[str] = "output_audio_buffer.cleared"


@dataclass(frozen=True)
class ResponseDone:
    response: ResponseInfo
    event_id: str | None = None
    type: ClassVar[str] = "response.done"


@dataclass(frozen=True)
class ConversationItemTruncated:
    item_id: str
    audio_end_ms: int
    content_index: int = 0
    event_id: str | None = None
    type: ClassVar[str] = "conversation.item.truncated"


@dataclass(frozen=True)
class ErrorEvent:
    error: ErrorInfo
    event_id: str | None = None
    type: ClassVar[str] = "error"


@dataclass(frozen=True)
class OtherServerEvent:
    """A server event Spine does not model, kept with its data (forward compatible)."""

    type: str
    data: Mapping[str, Any] = field(repr=False)
    event_id: str | None = None


ServerEvent = (
    SessionCreated
    | SessionUpdated
    | InputAudioBufferCommitted
    | InputAudioBufferCleared
    | ResponseCreated
    | ResponseOutputItemAdded
    | ResponseOutputItemDone
    | TranscriptDelta
    | TranscriptDone
    | OutputAudioBufferStarted
    | OutputAudioBufferStopped
    | OutputAudioBufferCleared
    | ResponseDone
    | ConversationItemTruncated
    | ErrorEvent
    | OtherServerEvent
)

# ------------------------------------------------------------------------------------------------ to JSON


def dumps(event: ClientEvent | ServerEvent) -> str:
    """The event as the JSON text sent on the data channel."""
    return json.dumps(to_wire(event), ensure_ascii=False, separators=(",", ":"))


def to_wire(event: ClientEvent | ServerEvent) -> dict[str, Any]:
    """The event as the protocol's JSON object."""
    if isinstance(event, OtherClientEvent | OtherServerEvent):
        return {**event.data, "type": event.type}
    wire: dict[str, Any] = {"type": event.type}
    if event.event_id is not None:
        wire["event_id"] = event.event_id
    wire.update(_body(event))
    return wire


def _body(event: ClientEvent | ServerEvent) -> dict[str, Any]:
    match event:
        case SessionUpdate(session=session):
            return {"session": _session_wire(session)}
        case ResponseCreate(instructions=instructions):
            return {} if instructions is None else {"response": {"instructions": instructions}}
        case ResponseCancel(response_id=response_id):
            return {} if response_id is None else {"response_id": response_id}
        case ConversationItemTruncate() | ConversationItemTruncated():
            return {"item_id": event.item_id, "content_index": event.content_index, "audio_end_ms": event.audio_end_ms}
        case ConversationItemCreate(text=text, role=role):
            part = "output_text" if role == "assistant" else "input_text"
            return {"item": {"type": "message", "role": role, "content": [{"type": part, "text": text}]}}
        case SessionCreated(session=info) | SessionUpdated(session=info):
            return {"session": _session_info_wire(info)}
        case InputAudioBufferCommitted(item_id=item_id, previous_item_id=previous):
            return {"item_id": item_id, "previous_item_id": previous}
        case ResponseCreated(response=response) | ResponseDone(response=response):
            return {"response": _response_wire(response)}
        case ResponseOutputItemAdded() | ResponseOutputItemDone():
            return {
                "response_id": event.response_id,
                "output_index": event.output_index,
                "item": _item_wire(event.item),
            }
        case TranscriptDelta() | TranscriptDone():
            said = {"delta": event.delta} if isinstance(event, TranscriptDelta) else {"transcript": event.transcript}
            ids = {"response_id": event.response_id, "item_id": event.item_id}
            return {**ids, "output_index": event.output_index, "content_index": event.content_index, **said}
        case OutputAudioBufferStarted() | OutputAudioBufferStopped() | OutputAudioBufferCleared():
            return {} if event.response_id is None else {"response_id": event.response_id}
        case ErrorEvent(error=error):
            return {"error": _error_wire(error)}
    return {}  # the events with nothing but a type (and an event_id)


def _session_wire(session: SessionConfig) -> dict[str, Any]:
    wire: dict[str, Any] = {"type": "realtime", "output_modalities": ["audio"]}
    if session.instructions is not None:
        wire["instructions"] = session.instructions
    audio: dict[str, Any] = {}
    if session.turn_detection is not None:
        detection = None if session.turn_detection == TURN_DETECTION_OFF else {"type": session.turn_detection}
        audio["input"] = {"turn_detection": detection}
    if session.voice is not None:
        audio["output"] = {"voice": session.voice}
    if audio:
        wire["audio"] = audio
    return wire


def _session_info_wire(info: SessionInfo) -> dict[str, Any]:
    wire: dict[str, Any] = {"type": "realtime", "object": "realtime.session", "output_modalities": ["audio"]}
    for name in ("id", "model", "instructions"):
        if getattr(info, name) is not None:
            wire[name] = getattr(info, name)
    audio: dict[str, Any] = {"input": {}, "output": {}}
    if info.turn_detection is not None:
        off = info.turn_detection == TURN_DETECTION_OFF
        audio["input"]["turn_detection"] = None if off else {"type": info.turn_detection}
    if info.voice is not None:
        audio["output"]["voice"] = info.voice
    wire["audio"] = audio
    return wire


def _response_wire(response: ResponseInfo) -> dict[str, Any]:
    wire: dict[str, Any] = {"object": "realtime.response", "id": response.id, "status": response.status}
    if response.reason is not None or response.error_code is not None:
        details: dict[str, Any] = {"type": response.status, "reason": response.reason}
        if response.error_code is not None:
            details["error"] = {"type": "server_error", "code": response.error_code}
        wire["status_details"] = details
    wire["output"] = [{"id": item_id, "object": "realtime.item"} for item_id in response.output_item_ids]
    return wire


def _item_wire(item: ItemInfo) -> dict[str, Any]:
    wire: dict[str, Any] = {"id": item.id, "object": "realtime.item"}
    for name in ("type", "role", "status"):
        if getattr(item, name) is not None:
            wire[name] = getattr(item, name)
    wire["content"] = []
    return wire


def _error_wire(error: ErrorInfo) -> dict[str, Any]:
    return {
        "type": error.type,
        "code": error.code,
        "message": error.message,
        "param": error.param,
        "event_id": error.event_id,
    }


# ------------------------------------------------------------------------------------------------ from JSON


def parse_server_event(text: str | bytes) -> ServerEvent:
    """One message from the server, validated; `RealtimeProtocolError` if it is not a valid event."""
    data, kind = _envelope(text)
    event_id = _Fields(data, kind).opt_text("event_id")
    parse = _SERVER_PARSERS.get(kind)
    if parse is None:
        return OtherServerEvent(kind, data, event_id)
    return parse(_Fields(data, f"the {kind} event"), event_id)


def parse_client_event(text: str | bytes) -> ClientEvent:
    """One message from a client (the test peer's side), validated like `parse_server_event`."""
    data, kind = _envelope(text)
    event_id = _Fields(data, kind).opt_text("event_id")
    parse = _CLIENT_PARSERS.get(kind)
    if parse is None:
        return OtherClientEvent(kind, data, event_id)
    return parse(_Fields(data, f"the {kind} event"), event_id)


def _envelope(text: str | bytes) -> tuple[dict[str, Any], str]:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise RealtimeProtocolError("an event is not UTF-8 text; events are JSON text messages") from None
    if len(text) > MAX_EVENT_CHARS:
        raise RealtimeProtocolError(f"an event of {len(text)} characters is longer than {MAX_EVENT_CHARS}")
    try:
        data = json.loads(text)
    # ValueError: not JSON, or an integer past int()'s 4300 digits; RecursionError: nesting past Python's limit.
    except (ValueError, RecursionError):
        raise RealtimeProtocolError("an event is not JSON") from None
    if not isinstance(data, dict):
        raise RealtimeProtocolError(f"an event must be a JSON object, got {_json_kind(data)}")
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise RealtimeProtocolError(f'an event has no "type" string (got {_json_kind(kind)})')
    if len(kind) > 100 or not kind.isprintable():
        raise RealtimeProtocolError(f"an event's type is not a plausible event name: {printable(kind[:60])!r}")
    return data, kind


# JSON's "\ud800" escape makes a lone surrogate, which is no text: the UTF-8 event log, where a transcript goes,
# fails to write it. A typed event carries U+FFFD in its place.
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


class _Fields:
    """Typed reads of one JSON object's fields; each failure is a `RealtimeProtocolError` naming `where`."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self._data, self._where = data, where

    def text(self, key: str) -> str:
        value = self._data.get(key)
        if not isinstance(value, str):
            raise self._wrong(key, "a string", value)
        return _LONE_SURROGATE.sub("\ufffd", value)

    def opt_text(self, key: str) -> str | None:
        value = self._data.get(key)
        if value is not None and not isinstance(value, str):
            raise self._wrong(key, "a string or null", value)
        return value if value is None else _LONE_SURROGATE.sub("\ufffd", value)

    def count(self, key: str, default: int | None = None) -> int:
        value = self._data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self._wrong(key, "a whole number >= 0", value)
        return value

    def obj(self, key: str) -> _Fields:
        value = self._data.get(key)
        if not isinstance(value, dict):
            raise self._wrong(key, "an object", value)
        return _Fields(value, f"{self._where}'s {key}")

    def opt_obj(self, key: str) -> _Fields | None:
        value = self._data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self._wrong(key, "an object or null", value)
        return _Fields(value, f"{self._where}'s {key}")

    def has(self, key: str) -> bool:
        return key in self._data

    def raw(self, key: str) -> Any:
        return self._data.get(key)

    def list_of_objs(self, key: str) -> list[_Fields]:
        value = self._data.get(key, [])
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
            raise self._wrong(key, "a list of objects", value)
        return [_Fields(entry, f"{self._where}'s {key}") for entry in value]

    def _wrong(self, key: str, wanted: str, value: Any) -> RealtimeProtocolError:
        got = "nothing" if key not in self._data else _json_kind(value)
        return RealtimeProtocolError(f"{self._where}: {key!r} must be {wanted}, got {got}")


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number" if not isinstance(value, int) or value >= 0 else "a negative number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# ---- server events


def _turn_detection(fields: _Fields) -> str | None:
    """`audio.input.turn_detection` of a session object: off (null), the VAD's type, or None when absent."""
    audio = fields.opt_obj("audio")
    source = audio.opt_obj("input") if audio is not None else None
    if source is None or not source.has("turn_detection"):
        return None
    detection = source.opt_obj("turn_detection")
    if detection is None:
        return TURN_DETECTION_OFF
    return detection.opt_text("type") or "unknown"


def _session_info(fields: _Fields) -> SessionInfo:
    audio = fields.opt_obj("audio")
    output = audio.opt_obj("output") if audio is not None else None
    return SessionInfo(
        id=fields.opt_text("id"),
        model=fields.opt_text("model"),
        instructions=fields.opt_text("instructions"),
        voice=output.opt_text("voice") if output is not None else None,
        turn_detection=_turn_detection(fields),
    )


def _item_info(fields: _Fields) -> ItemInfo:
    return ItemInfo(
        id=fields.text("id"),
        type=fields.opt_text("type"),
        role=fields.opt_text("role"),
        status=fields.opt_text("status"),
    )


def _response_info(fields: _Fields) -> ResponseInfo:
    details = fields.opt_obj("status_details")
    error = details.opt_obj("error") if details is not None else None
    return ResponseInfo(
        id=fields.text("id"),
        status=fields.opt_text("status"),
        reason=details.opt_text("reason") if details is not None else None,
        error_code=error.opt_text("code") if error is not None else None,
        output_item_ids=tuple(item.text("id") for item in fields.list_of_objs("output")),
    )


def _session_created(fields: _Fields, event_id: str | None) -> ServerEvent:
    return SessionCreated(_session_info(fields.obj("session")), event_id)


def _session_updated(fields: _Fields, event_id: str | None) -> ServerEvent:
    return SessionUpdated(_session_info(fields.obj("session")), event_id)


def _committed(fields: _Fields, event_id: str | None) -> ServerEvent:
    return InputAudioBufferCommitted(fields.text("item_id"), fields.opt_text("previous_item_id"), event_id)


def _cleared_input(fields: _Fields, event_id: str | None) -> ServerEvent:
    return InputAudioBufferCleared(event_id)


def _response_created(fields: _Fields, event_id: str | None) -> ServerEvent:
    return ResponseCreated(_response_info(fields.obj("response")), event_id)


def _response_done(fields: _Fields, event_id: str | None) -> ServerEvent:
    return ResponseDone(_response_info(fields.obj("response")), event_id)


def _item_added(fields: _Fields, event_id: str | None) -> ServerEvent:
    item = _item_info(fields.obj("item"))
    return ResponseOutputItemAdded(fields.text("response_id"), item, fields.count("output_index", 0), event_id)


def _item_done(fields: _Fields, event_id: str | None) -> ServerEvent:
    item = _item_info(fields.obj("item"))
    return ResponseOutputItemDone(fields.text("response_id"), item, fields.count("output_index", 0), event_id)


def _transcript_delta(fields: _Fields, event_id: str | None) -> ServerEvent:
    return TranscriptDelta(
        response_id=fields.text("response_id"),
        item_id=fields.text("item_id"),
        delta=fields.text("delta"),
        output_index=fields.count("output_index", 0),
        content_index=fields.count("content_index", 0),
        event_id=event_id,
    )


def _transcript_done(fields: _Fields, event_id: str | None) -> ServerEvent:
    return TranscriptDone(
        response_id=fields.text("response_id"),
        item_id=fields.text("item_id"),
        transcript=fields.text("transcript"),
        output_index=fields.count("output_index", 0),
        content_index=fields.count("content_index", 0),
        event_id=event_id,
    )


def _audio_started(fields: _Fields, event_id: str | None) -> ServerEvent:
    return OutputAudioBufferStarted(fields.opt_text("response_id"), event_id)


def _audio_stopped(fields: _Fields, event_id: str | None) -> ServerEvent:
    return OutputAudioBufferStopped(fields.opt_text("response_id"), event_id)


def _audio_cleared(fields: _Fields, event_id: str | None) -> ServerEvent:
    return OutputAudioBufferCleared(fields.opt_text("response_id"), event_id)


def _truncated(fields: _Fields, event_id: str | None) -> ServerEvent:
    return ConversationItemTruncated(
        fields.text("item_id"), fields.count("audio_end_ms"), fields.count("content_index", 0), event_id
    )


def _error(fields: _Fields, event_id: str | None) -> ServerEvent:
    error = fields.obj("error")
    info = ErrorInfo(
        type=error.text("type"),
        message=error.text("message"),
        code=error.opt_text("code"),
        param=error.opt_text("param"),
        event_id=error.opt_text("event_id"),
    )
    return ErrorEvent(info, event_id)


_SERVER_PARSERS = {
    "session.created": _session_created,
    "session.updated": _session_updated,
    "input_audio_buffer.committed": _committed,
    "input_audio_buffer.cleared": _cleared_input,
    "response.created": _response_created,
    "response.output_item.added": _item_added,
    "response.output_item.done": _item_done,
    "response.output_audio_transcript.delta": _transcript_delta,
    "response.output_audio_transcript.done": _transcript_done,
    "output_audio_buffer.started": _audio_started,
    "output_audio_buffer.stopped": _audio_stopped,
    "output_audio_buffer.cleared": _audio_cleared,
    "response.done": _response_done,
    "conversation.item.truncated": _truncated,
    "error": _error,
}

# ---- client events (the test peer's edge)


def _session_update(fields: _Fields, event_id: str | None) -> ClientEvent:
    session = fields.obj("session")
    if session.opt_text("type") != "realtime":
        raise RealtimeProtocolError('the session.update event\'s session: "type" must be "realtime" (the GA protocol)')
    audio = session.opt_obj("audio")
    output = audio.opt_obj("output") if audio is not None else None
    config = SessionConfig(
        instructions=session.opt_text("instructions"),
        voice=output.opt_text("voice") if output is not None else None,
        turn_detection=_turn_detection(session),
    )
    return SessionUpdate(config, event_id)


def _commit(fields: _Fields, event_id: str | None) -> ClientEvent:
    return InputAudioBufferCommit(event_id)


def _clear_input(fields: _Fields, event_id: str | None) -> ClientEvent:
    return InputAudioBufferClear(event_id)


def _response_create(fields: _Fields, event_id: str | None) -> ClientEvent:
    response = fields.opt_obj("response")
    return ResponseCreate(response.opt_text("instructions") if response is not None else None, event_id)


def _response_cancel(fields: _Fields, event_id: str | None) -> ClientEvent:
    return ResponseCancel(fields.opt_text("response_id"), event_id)


def _clear_output(fields: _Fields, event_id: str | None) -> ClientEvent:
    return OutputAudioBufferClear(event_id)


def _truncate(fields: _Fields, event_id: str | None) -> ClientEvent:
    return ConversationItemTruncate(
        fields.text("item_id"), fields.count("audio_end_ms"), fields.count("content_index"), event_id
    )


def _item_create(fields: _Fields, event_id: str | None) -> ClientEvent:
    item = fields.obj("item")
    parts = item.list_of_objs("content")
    texts = [part.text("text") for part in parts if part.opt_text("type") in ("input_text", "output_text", "text")]
    if not texts:
        raise RealtimeProtocolError("the conversation.item.create event's item: 'content' has no text part")
    return ConversationItemCreate("".join(texts), item.opt_text("role") or "user", event_id)


_CLIENT_PARSERS = {
    "session.update": _session_update,
    "input_audio_buffer.commit": _commit,
    "input_audio_buffer.clear": _clear_input,
    "response.create": _response_create,
    "response.cancel": _response_cancel,
    "output_audio_buffer.clear": _clear_output,
    "conversation.item.truncate": _truncate,
    "conversation.item.create": _item_create,
}
