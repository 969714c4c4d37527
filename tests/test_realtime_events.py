"""The Realtime protocol's events as typed data: every event to JSON and back unchanged, the wire shapes the real
server expects and sends, unknown events kept, and malformed ones refused with a message naming the field."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device.reply.realtime_events import (
    MAX_EVENT_CHARS,
    TURN_DETECTION_OFF,
    ClientEvent,
    ConversationItemCreate,
    ConversationItemTruncate,
    ConversationItemTruncated,
    ErrorEvent,
    ErrorInfo,
    InputAudioBufferClear,
    InputAudioBufferCleared,
    InputAudioBufferCommit,
    InputAudioBufferCommitted,
    ItemInfo,
    OtherClientEvent,
    OtherServerEvent,
    OutputAudioBufferClear,
    OutputAudioBufferCleared,
    OutputAudioBufferStarted,
    OutputAudioBufferStopped,
    RealtimeProtocolError,
    ResponseCancel,
    ResponseCreate,
    ResponseCreated,
    ResponseDone,
    ResponseInfo,
    ResponseOutputItemAdded,
    ResponseOutputItemDone,
    ServerEvent,
    SessionConfig,
    SessionCreated,
    SessionInfo,
    SessionUpdate,
    SessionUpdated,
    TranscriptDelta,
    TranscriptDone,
    dumps,
    parse_client_event,
    parse_server_event,
    to_wire,
)

CLIENT_EVENTS: list[ClientEvent] = [
    SessionUpdate(SessionConfig(instructions="Be brief.", voice="marin"), "e1"),
    SessionUpdate(SessionConfig(turn_detection="server_vad"), "e2"),
    SessionUpdate(SessionConfig(turn_detection=None)),
    InputAudioBufferCommit("e3"),
    InputAudioBufferClear(),
    ResponseCreate(),
    ResponseCreate(instructions="Answer in French."),
    ResponseCancel(),
    ResponseCancel(response_id="resp_1", event_id="e4"),
    OutputAudioBufferClear("e5"),
    ConversationItemTruncate("item_1", 1234, 0, "e6"),
    ConversationItemCreate("what time is it", event_id="e7"),
    ConversationItemCreate("It is noon.", role="assistant"),
]

CANCEL_REFUSED = "Cancellation failed: no active response found"
SERVER_EVENTS: list[ServerEvent] = [
    SessionCreated(SessionInfo("sess_1", "gpt-realtime", "Be kind.", "marin", "server_vad"), "s1"),
    SessionUpdated(SessionInfo("sess_1", "gpt-realtime", None, "marin", TURN_DETECTION_OFF), "s2"),
    InputAudioBufferCommitted("item_u1", None, "s3"),
    InputAudioBufferCommitted("item_u2", "item_u1", "s4"),
    InputAudioBufferCleared("s5"),
    ResponseCreated(ResponseInfo("resp_1", "in_progress"), "s6"),
    ResponseOutputItemAdded("resp_1", ItemInfo("item_a1", "message", "assistant", "in_progress"), 0, "s7"),
    ResponseOutputItemDone("resp_1", ItemInfo("item_a1", "message", "assistant", "completed"), 0, "s8"),
    TranscriptDelta("resp_1", "item_a1", "Hello ", 0, 0, "s9"),
    TranscriptDone("resp_1", "item_a1", "Hello there.", 0, 0, "s10"),
    OutputAudioBufferStarted("resp_1", "s11"),
    OutputAudioBufferStopped("resp_1", "s12"),
    OutputAudioBufferCleared("resp_1", "s13"),
    ResponseDone(ResponseInfo("resp_1", "completed", output_item_ids=("item_a1",)), "s14"),
    ResponseDone(ResponseInfo("resp_2", "cancelled", "client_cancelled"), "s15"),
    ResponseDone(ResponseInfo("resp_3", "failed", None, "server_error"), "s16"),
    ConversationItemTruncated("item_a1", 1500, 0, "s17"),
    ErrorEvent(ErrorInfo("invalid_request_error", CANCEL_REFUSED, "response_cancel_not_active", None, "e4"), "s18"),
]


@pytest.mark.parametrize("event", CLIENT_EVENTS, ids=lambda event: event.type)
def test_a_client_event_survives_json(event: ClientEvent) -> None:
    assert parse_client_event(dumps(event)) == event


@pytest.mark.parametrize("event", SERVER_EVENTS, ids=lambda event: event.type)
def test_a_server_event_survives_json(event: ServerEvent) -> None:
    assert parse_server_event(dumps(event)) == event


def test_session_update_turns_the_servers_turn_detection_off_in_the_ga_shape() -> None:
    wire = to_wire(SessionUpdate(SessionConfig(instructions="Be brief.", voice="marin"), "e1"))
    assert wire == {
        "type": "session.update",
        "event_id": "e1",
        "session": {
            "type": "realtime",
            "output_modalities": ["audio"],
            "instructions": "Be brief.",
            "audio": {"input": {"turn_detection": None}, "output": {"voice": "marin"}},
        },
    }


def test_the_barge_in_events_have_the_fields_the_server_reads() -> None:
    assert to_wire(ResponseCancel()) == {"type": "response.cancel"}
    assert to_wire(OutputAudioBufferClear()) == {"type": "output_audio_buffer.clear"}
    assert to_wire(ConversationItemTruncate("item_9", 2480)) == {
        "type": "conversation.item.truncate",
        "item_id": "item_9",
        "content_index": 0,
        "audio_end_ms": 2480,
    }


def test_a_real_servers_response_done_parses_with_its_status_and_reason() -> None:
    # Shaped as OpenAI documents it: more fields than Spine reads, which are ignored.
    text = json.dumps(
        {
            "type": "response.done",
            "event_id": "event_3132",
            "response": {
                "id": "resp_001",
                "object": "realtime.response",
                "status": "cancelled",
                "status_details": {"type": "cancelled", "reason": "client_cancelled"},
                "output": [{"id": "msg_006", "object": "realtime.item", "type": "message", "role": "assistant"}],
                "usage": {"total_tokens": 275, "input_tokens": 127, "output_tokens": 148},
                "conversation_id": "conv_001",
                "output_modalities": ["audio"],
            },
        }
    )
    event = parse_server_event(text)
    assert event == ResponseDone(ResponseInfo("resp_001", "cancelled", "client_cancelled", None, ("msg_006",)),
                                 "event_3132")  # fmt: skip


def test_a_real_servers_truncate_refusal_parses_as_an_error_with_its_param() -> None:
    text = json.dumps(
        {
            "type": "error",
            "event_id": "event_890",
            "error": {
                "type": "invalid_request_error",
                "code": "invalid_value",
                "message": "Audio content of 4950ms is already shorter than 5035ms",
                "param": "audio_end_ms",
                "event_id": "spine_12",
            },
        }
    )
    event = parse_server_event(text)
    assert isinstance(event, ErrorEvent)
    assert (event.error.code, event.error.param, event.error.event_id) == ("invalid_value", "audio_end_ms", "spine_12")


def test_session_created_reads_the_turn_detection_and_voice_of_a_ga_session() -> None:
    session = {
        "type": "realtime",
        "object": "realtime.session",
        "id": "sess_C9G5",
        "model": "gpt-realtime-2025-08-28",
        "audio": {
            "input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": {"type": "server_vad"}},
            "output": {"voice": "marin", "speed": 1},
        },
    }
    event = parse_server_event(json.dumps({"type": "session.created", "event_id": "x", "session": session}))
    assert event == SessionCreated(
        SessionInfo("sess_C9G5", "gpt-realtime-2025-08-28", None, "marin", "server_vad"), "x"
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"type": "rate_limits.updated", "rate_limits": []}, "rate_limits.updated"),
        ({"type": "response.content_part.added", "part": {"type": "audio"}}, "response.content_part.added"),
        ({"type": "some.future.event", "event_id": "f1", "whatever": {"x": 1}}, "some.future.event"),
    ],
)
def test_an_unknown_server_event_is_kept_with_its_data(data: dict[str, Any], expected: str) -> None:
    event = parse_server_event(json.dumps(data))
    assert isinstance(event, OtherServerEvent)
    assert event.type == expected
    assert dict(event.data) == data
    assert to_wire(event) == data


def test_an_unknown_client_event_is_kept_for_the_peer_to_refuse() -> None:
    data = {"type": "input_audio_buffer.append", "audio": "AAAA", "event_id": "a1"}
    assert parse_client_event(json.dumps(data)) == OtherClientEvent("input_audio_buffer.append", data, "a1")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "must be a JSON object, got a list"),
        ('"type"', "must be a JSON object, got a string"),
        ("{}", 'no "type" string (got null)'),
        ('{"type": 7}', 'no "type" string (got a number)'),
        ('{"type": ""}', 'no "type" string'),
        ('{"type": "bad\\u001b[31mtype"}', "not a plausible event name"),
        ('{"type": "error"}', "the error event: 'error' must be an object, got nothing"),
        ('{"type": "error", "error": {"type": "x"}}', "the error event's error: 'message' must be a string"),
        (
            '{"type": "response.output_audio_transcript.delta", "response_id": "r", "item_id": "i", "delta": 5}',
            "'delta' must be a string, got a number",
        ),
        (
            '{"type": "response.output_audio_transcript.delta", "response_id": "r", "delta": "hi"}',
            "'item_id' must be a string, got nothing",
        ),
        ('{"type": "conversation.item.truncated", "item_id": "i", "audio_end_ms": -5}', "got a negative number"),
        ('{"type": "conversation.item.truncated", "item_id": "i", "audio_end_ms": true}', "got a boolean"),
        ('{"type": "conversation.item.truncated", "item_id": "i", "audio_end_ms": 1.5}', "got a number"),
        ('{"type": "response.created", "response": []}', "'response' must be an object, got a list"),
        ('{"type": "response.done", "response": {"status": "completed"}}', "'id' must be a string"),
        ('{"type": "response.done", "response": {"id": "r", "output": {}}}', "'output' must be a list of objects"),
        ('{"type": "response.done", "response": {"id": "r", "status_details": 3}}', "'status_details' must be"),
        ('{"type": "response.output_item.added", "response_id": "r", "item": {"type": "message"}}', "'id' must"),
        ('{"type": "session.updated", "session": null}', "'session' must be an object, got null"),
        ('{"type": "session.created", "session": {"audio": {"input": {"turn_detection": 1}}}}', "'turn_detection'"),
        ('{"type": "input_audio_buffer.committed", "event_id": 4}', "'event_id' must be a string or null"),
    ],
)
def test_a_malformed_server_event_is_a_clear_error(text: str, says: str) -> None:
    with pytest.raises(RealtimeProtocolError) as raised:
        parse_server_event(text)
    assert says in str(raised.value)


def test_an_error_never_quotes_the_value_it_refused() -> None:
    hostile = "sk-secret-\x1b[2J-forged\nlog line"
    with pytest.raises(RealtimeProtocolError) as raised:
        parse_server_event(json.dumps({"type": "response.output_audio_transcript.delta", "delta": [hostile]}))
    assert "secret" not in str(raised.value) and "\x1b" not in str(raised.value)


def test_oversized_and_non_utf8_events_are_refused() -> None:
    with pytest.raises(RealtimeProtocolError, match="longer than"):
        parse_server_event(json.dumps({"type": "x", "pad": "a" * MAX_EVENT_CHARS}))
    with pytest.raises(RealtimeProtocolError, match="not UTF-8"):
        parse_server_event(b'{"type": "\xff"}')
    with pytest.raises(RealtimeProtocolError, match="not JSON"):
        parse_server_event("[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"type": "session.update", "session": {"instructions": "x"}}', '"type" must be "realtime"'),
        ('{"type": "session.update"}', "'session' must be an object"),
        ('{"type": "conversation.item.truncate", "item_id": "i", "audio_end_ms": 10}', "'content_index'"),
        ('{"type": "conversation.item.truncate", "content_index": 0, "audio_end_ms": 10}', "'item_id'"),
        ('{"type": "conversation.item.create", "item": {"type": "message", "content": []}}', "no text part"),
        ('{"type": "response.cancel", "response_id": 3}', "'response_id' must be a string or null"),
    ],
)
def test_a_malformed_client_event_is_a_clear_error(text: str, says: str) -> None:
    with pytest.raises(RealtimeProtocolError) as raised:
        parse_client_event(text)
    assert says in str(raised.value)


def test_session_update_without_turn_detection_leaves_the_servers() -> None:
    event = parse_client_event('{"type": "session.update", "session": {"type": "realtime", "instructions": "x"}}')
    assert event == SessionUpdate(SessionConfig(instructions="x", turn_detection=None))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
KNOWN_TYPES = [event.type for event in SERVER_EVENTS] + [event.type for event in CLIENT_EVENTS]
FIELDS = ["response", "item", "item_id", "response_id", "delta", "transcript", "audio_end_ms", "error", "session",
          "content_index", "output", "status_details", "event_id", "previous_item_id", "output_index"]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(KNOWN_TYPES),
    fields=st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=6),
)
def test_whatever_a_peer_sends_parses_or_is_refused_but_never_crashes(kind: str, fields: dict[str, Any]) -> None:
    text = json.dumps({**fields, "type": kind})
    for parse in (parse_server_event, parse_client_event):
        with contextlib.suppress(RealtimeProtocolError):  # refused is fine; any other exception fails the test
            parse(text)
