"""The device call's bookkeeping, without a network (events fed as the data channel would, audio as the track
would, time injected): which response and item remote audio belongs to, what is dropped, what a harmless race
is, and that a malformed event is a notice rather than a crash."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from device.rates import SPINE_RATE_HZ
from device.reply.realtime_audio import ResampleStream
from device.reply.realtime_call import STOPPED_GRACE_S, RealtimeCall
from device.reply.realtime_config import RTC_RATE_HZ, ExpectedRace, MalformedEvent, Notice, RealtimeConfig, RemoteAudio
from device.reply.realtime_events import ErrorEvent, ResponseCreated, ServerEvent, TranscriptDelta

CONFIG = RealtimeConfig(base_url="http://127.0.0.1:9/v1", model="gpt-realtime", api_key="sk-unit")
FRAME = np.full(960, 1000, np.int16)  # 20 ms at 48 kHz


class Harness:
    def __init__(self, call: RealtimeCall, events: list[ServerEvent | Notice], audio: list[RemoteAudio]) -> None:
        self.call, self.events, self.audio = call, events, audio
        self.down = ResampleStream(RTC_RATE_HZ, SPINE_RATE_HZ)

    def server_says(self, **event: Any) -> None:
        self.call._on_message(json.dumps(event))

    def frames(self, count: int) -> None:
        for _ in range(count):
            self.call._on_remote_audio(FRAME, self.down)


def with_call(test: Callable[[Harness, list[float]], Awaitable[None]]) -> None:
    async def run() -> None:
        now = [100.0]
        events: list[ServerEvent | Notice] = []
        audio: list[RemoteAudio] = []
        call = RealtimeCall(CONFIG, events.append, audio.append, clock=lambda: now[0])
        harness = Harness(call, events, audio)
        harness.server_says(type="session.updated", session={"type": "realtime", "id": "sess_1"})
        events.clear()
        try:
            await test(harness, now)
        finally:
            await call.close()

    asyncio.run(run())


def created(harness: Harness, response_id: str, item_id: str) -> None:
    harness.server_says(type="response.created", response={"id": response_id, "status": "in_progress"})
    item = {"id": item_id, "type": "message", "role": "assistant"}
    harness.server_says(type="response.output_item.added", response_id=response_id, output_index=0, item=item)


def test_audio_before_any_response_belongs_to_none_and_is_not_delivered() -> None:
    async def test(harness: Harness, now: list[float]) -> None:
        harness.frames(5)
        assert harness.audio == []
        assert harness.call.stray_ms == 100.0

    with_call(test)


def test_audio_after_a_response_starts_is_tagged_with_it_and_counted() -> None:
    async def test(harness: Harness, now: list[float]) -> None:
        created(harness, "resp_1", "item_1")
        harness.frames(50)  # one second
        assert {(chunk.response_id, chunk.item_id) for chunk in harness.audio} == {("resp_1", "item_1")}
        assert harness.call.received_ms("item_1") == 1000
        assert harness.audio[-1].received_ms == 1000.0
        delivered = sum(len(chunk.samples) for chunk in harness.audio)
        assert 16_000 - 160 <= delivered <= 16_000  # 16 kHz, less what the resampler holds back (6 ms)
        assert {chunk.samples.dtype for chunk in harness.audio} == {np.dtype(np.int16)}

    with_call(test)


def test_a_cancelled_response_delivers_nothing_more() -> None:
    async def test(harness: Harness, now: list[float]) -> None:
        created(harness, "resp_1", "item_1")
        harness.frames(10)
        harness.call.cancel(120, "item_1")  # the channel is not open: nothing is sent, but the audio stops here
        count = len(harness.audio)
        harness.frames(10)
        assert len(harness.audio) == count
        assert harness.call.received_ms("item_1") == 200
        created(harness, "resp_2", "item_2")  # the next answer plays
        harness.frames(3)
        assert harness.audio[-1].response_id == "resp_2"

    with_call(test)


def test_a_cancel_before_the_response_is_announced_silences_it_on_arrival() -> None:
    async def test(harness: Harness, now: list[float]) -> None:
        harness.call._requested_unseen = True  # response.create went out; response.created is on its way
        harness.call.cancel(None, None)
        created(harness, "resp_1", "item_1")
        harness.frames(10)
        assert harness.audio == []

    with_call(test)


def test_the_tail_after_stopped_is_delivered_and_later_audio_is_not() -> None:
    async def test(harness: Harness, now: list[float]) -> None:
        created(harness, "resp_1", "item_1")
        harness.frames(2)
        harness.server_says(type="output_audio_buffer.stopped", response_id="resp_1")
        now[0] += STOPPED_GRACE_S / 2
        harness.frames(2)  # the receiver's jitter buffer releases the last frames after the event
        assert harness.call.received_ms("item_1") == 80
        now[0] += STOPPED_GRACE_S
        harness.frames(5)  # a server that sends silence between answers: nobody's
        assert harness.call.received_ms("item_1") == 80
        assert harness.call.stray_ms == 100.0

    with_call(test)


def test_a_cleared_response_delivers_nothing_more() -> None:
    async def test(harness: Harness, now: list[float]) -> None:
        created(harness, "resp_1", "item_1")
        harness.server_says(type="output_audio_buffer.cleared", response_id="resp_1")
        harness.frames(3)
        assert harness.audio == []

    with_call(test)


def error(code: str | None, message: str, param: str | None = None, event_id: str | None = None) -> dict[str, Any]:
    return {"type": "invalid_request_error", "code": code, "message": message, "param": param, "event_id": event_id}


def test_errors_that_answer_a_racing_cancel_or_truncate_are_harmless_notices() -> None:
    async def test(harness: Harness, now: list[float]) -> None:
        harness.server_says(type="error", error=error("response_cancel_not_active", "Cancellation failed: no active "
                                                      "response found"))  # fmt: skip
        too_far = "Audio content of 800ms is already shorter than 1200ms"
        harness.server_says(type="error", error=error("invalid_value", too_far, "audio_end_ms"))
        harness.server_says(type="error", error=error("server_error", "The server had an error."))
        first, second, third = harness.events
        assert isinstance(first, ExpectedRace) and first.sent == "response.cancel"
        assert isinstance(second, ExpectedRace) and second.sent == "conversation.item.truncate"
        assert second.error.message == too_far
        assert isinstance(third, ErrorEvent) and third.error.code == "server_error"

    with_call(test)


def test_an_error_naming_a_truncate_the_client_sent_is_harmless() -> None:
    async def test(harness: Harness, now: list[float]) -> None:
        harness.call._sent.append(("spine_7", "conversation.item.truncate"))
        harness.server_says(type="error", error=error("item_not_found", "no such item", "item_id", "spine_7"))
        harness.call._sent.append(("spine_8", "response.create"))
        harness.call._awaiting_since_s = now[0]
        harness.server_says(type="error", error=error("conversation_already_has_active_response", "busy", None,
                                                      "spine_8"))  # fmt: skip
        race, refused = harness.events
        assert isinstance(race, ExpectedRace) and race.sent == "conversation.item.truncate"
        assert isinstance(refused, ErrorEvent)  # a refused response.create is news for the turn
        assert harness.call._awaiting_since_s is None  # and no stall is waited for: no response is coming

    with_call(test)


def test_a_malformed_event_is_a_notice_and_the_call_goes_on() -> None:
    async def test(harness: Harness, now: list[float]) -> None:
        harness.call._on_message("{not json")
        harness.server_says(type="response.output_audio_transcript.delta", response_id="r", item_id="i", delta=3)
        created(harness, "resp_1", "item_1")
        harness.server_says(type="response.output_audio_transcript.delta", response_id="resp_1", item_id="item_1",
                            delta="Hi ")  # fmt: skip
        kinds = [type(event) for event in harness.events]
        assert kinds[:2] == [MalformedEvent, MalformedEvent]
        assert ResponseCreated in kinds and kinds[-1] is TranscriptDelta
        assert harness.call.ended is None

    with_call(test)
