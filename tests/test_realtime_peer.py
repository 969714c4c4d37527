"""The realtime test peer held to the real server's protocol by a bare aiortc client (not Spine's, so the peer is
checked on its own): the call endpoint's HTTP answers, the session, the input buffer, a response's events in
order, and the error replies a real server gives (cancel with nothing active, a response while one is active,
truncation past the audio or of an unknown item, an unknown or malformed event); and the CLI's checks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from device.reply.realtime_audio import PacedTrack
from device.testing.realtime_peer import RealtimePeer
from device.testing.realtime_peer_cli import main as peer_main
from device.testing.realtime_peer_records import PeerConfig
from tests.realtime_helpers import KEY, WAIT_S, tone

REPLY = "Alpha beta gamma delta."


class RawClient:
    """A bare WebRTC client: the events channel, a microphone track, and the peer's events as JSON objects."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.mic = PacedTrack()
        self.pc.addTransceiver(self.mic, direction="sendrecv")
        self.channel = self.pc.createDataChannel("oai-events")
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.channel.on("message", lambda text: self.received.put_nowait(json.loads(text)))
        self.opened = asyncio.Event()
        self.channel.on("open", self.opened.set)

    async def call(self, base_url: str, key: str | None = KEY) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        status, answer, _ = await post_offer(base_url, self.pc.localDescription.sdp, key)
        assert status == 201, answer
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await asyncio.wait_for(self.opened.wait(), WAIT_S)

    def send(self, event: dict[str, Any] | str) -> None:
        self.channel.send(event if isinstance(event, str) else json.dumps(event))

    async def next(self, kind: str) -> dict[str, Any]:
        """The next event of `kind` (the ones before it are dropped)."""
        while True:
            event = await asyncio.wait_for(self.received.get(), WAIT_S)
            if event["type"] == kind:
                return event

    async def until(self, kind: str) -> list[dict[str, Any]]:
        """Every event up to and including the next of `kind`."""
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1]["type"] != kind:
            seen.append(await asyncio.wait_for(self.received.get(), WAIT_S))
        return seen

    async def ready(self) -> None:
        self.send(
            {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}}
        )
        await self.next("session.updated")

    async def speak(self, seconds: float) -> None:
        """Send `seconds` of a 48 kHz tone and wait until it has gone out (the tail follows)."""
        done = asyncio.Event()
        self.mic.feed(tone(440, seconds, 48_000))
        self.mic.start()
        self.mic.drain(done.set)
        await asyncio.wait_for(done.wait(), WAIT_S)

    async def close(self) -> None:
        await self.pc.close()


async def post_offer(
    base_url: str, sdp: str, key: str | None, content_type: str = "application/sdp"
) -> tuple[int, str, Any]:
    headers = {"Content-Type": content_type}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base_url}/realtime/calls?model=gpt-realtime", data=sdp.encode(), headers=headers) as reply,
    ):
        return reply.status, await reply.text(), reply.headers


@pytest.fixture
def peer() -> Iterator[RealtimePeer]:
    with RealtimePeer(PeerConfig(api_key=KEY, reply=REPLY, first_audio_delay_s=0.02, generation_speed=8.0)) as running:
        yield running


def with_client(peer: RealtimePeer, test: Callable[[RawClient], Coroutine[Any, Any, None]]) -> None:
    async def run() -> None:
        client = RawClient()
        try:
            await client.call(peer.base_url)
            await test(client)
        finally:
            await client.close()

    asyncio.run(run())


def test_the_call_endpoint_answers_as_the_real_api(peer: RealtimePeer) -> None:
    async def test() -> None:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("audio", direction="sendrecv")
        pc.createDataChannel("oai-events")
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        status, body, headers = await post_offer(peer.base_url, offer, KEY)
        assert status == 201 and body.startswith("v=0") and "m=audio" in body
        assert headers["Content-Type"].startswith("application/sdp")
        assert headers["Location"].startswith("/v1/realtime/calls/rtc_")
        status, body, _ = await post_offer(peer.base_url, offer, None)
        assert status == 401 and "You didn't provide an API key" in body
        status, body, _ = await post_offer(peer.base_url, offer, "sk-wrong-1234567890")
        assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"
        assert "sk-***7890" in body  # masked, as OpenAI's: a client must not show this message
        status, body, _ = await post_offer(peer.base_url, offer, KEY, content_type="application/json")
        assert status == 400 and "application/sdp" in body
        status, body, _ = await post_offer(peer.base_url, "hello", KEY)
        assert status == 400 and json.loads(body)["error"]["code"] == "invalid_offer"
        await pc.close()

    asyncio.run(test())
    assert len(peer.calls) == 1 and peer.calls[0].model == "gpt-realtime"


def test_the_session_is_announced_then_updated_and_early_audio_is_not_kept(peer: RealtimePeer) -> None:
    async def test(client: RawClient) -> None:
        created = await client.next("session.created")
        assert created["session"]["audio"]["input"]["turn_detection"] == {"type": "server_vad"}
        await client.speak(0.3)  # before session.updated: counted, dropped
        call = peer.last_call()
        assert await asyncio.to_thread(peer.wait, lambda: call.audio_before_session_ms >= 200, WAIT_S)
        client.send({"type": "session.update", "event_id": "u1",
                     "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}})  # fmt: skip
        updated = await client.next("session.updated")
        assert updated["session"]["audio"]["input"]["turn_detection"] is None
        assert call.turn_detection == "off"
        client.send({"type": "input_audio_buffer.commit", "event_id": "c1"})
        error = (await client.next("error"))["error"]
        assert (error["code"], error["event_id"]) == ("input_audio_buffer_commit_empty", "c1")
        assert error["message"].startswith("Error committing input audio buffer: buffer too small.")

    with_client(peer, test)


def test_a_turn_is_committed_and_answered_with_the_events_in_order(peer: RealtimePeer) -> None:
    async def test(client: RawClient) -> None:
        await client.ready()
        await client.speak(0.5)
        call = peer.last_call()
        assert await asyncio.to_thread(peer.wait, lambda: call.input_ms >= 400, WAIT_S)
        client.send({"type": "input_audio_buffer.commit"})
        committed = await client.next("input_audio_buffer.committed")
        client.send({"type": "response.create"})
        events = await client.until("output_audio_buffer.stopped")
        kinds = [event["type"] for event in events if event["type"] != "response.output_audio_transcript.delta"]
        assert kinds[:2] == ["conversation.item.added", "conversation.item.done"]  # the committed user item
        assert kinds[2:] == [
            "response.created", "response.output_item.added", "conversation.item.added", "response.content_part.added",
            "output_audio_buffer.started", "response.output_audio.done", "response.output_audio_transcript.done",
            "response.content_part.done", "response.output_item.done", "conversation.item.done", "response.done",
            "output_audio_buffer.stopped",
        ]  # fmt: skip
        deltas = [event["delta"] for event in events if event["type"] == "response.output_audio_transcript.delta"]
        assert "".join(deltas) == REPLY
        done = next(event for event in events if event["type"] == "response.done")
        assert done["response"]["status"] == "completed"
        user = call.user_items[0]
        assert user.id == committed["item_id"] and user.audio is not None and len(user.audio) >= 0.4 * 48_000
        item = call.assistant_items[0]
        assert item.transcript == REPLY and item.status == "completed"
        assert item.spoken is not None and item.sent_ms == pytest.approx(item.spoken.duration_ms, abs=1)

    with_client(peer, test)


def test_the_servers_error_replies(peer: RealtimePeer) -> None:
    async def test(client: RawClient) -> None:
        await client.ready()
        client.send({"type": "response.cancel", "event_id": "x1"})
        error = (await client.next("error"))["error"]
        refusal = "Cancellation failed: no active response found"
        assert error == {"type": "invalid_request_error", "code": "response_cancel_not_active", "message": refusal,
                         "param": None, "event_id": "x1"}  # fmt: skip
        client.send({"type": "response.create"})
        client.send({"type": "response.create", "event_id": "x2"})
        error = (await client.next("error"))["error"]
        assert (error["code"], error["event_id"]) == ("conversation_already_has_active_response", "x2")
        await client.next("response.done")
        item_id = peer.last_call().assistant_items[0].id
        client.send({"type": "conversation.item.truncate", "item_id": "nope", "content_index": 0, "audio_end_ms": 5})
        assert (await client.next("error"))["error"]["code"] == "item_not_found"
        client.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
                     "audio_end_ms": 999_999, "event_id": "x3"})  # fmt: skip
        error = (await client.next("error"))["error"]
        assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", "audio_end_ms", "x3")
        assert error["message"].endswith("is already shorter than 999999ms")
        client.send({"type": "no.such.event", "event_id": "x4"})
        error = (await client.next("error"))["error"]
        assert (error["code"], error["param"]) == ("invalid_value", "type")
        client.send("{not json")
        assert (await client.next("error"))["error"]["code"] == "invalid_event"
        client.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 700})
        truncated = await client.next("conversation.item.truncated")
        assert (truncated["item_id"], truncated["audio_end_ms"]) == (item_id, 700)
        item = peer.last_call().assistant_items[0]
        assert item.spoken is not None
        assert item.transcript == "" and item.kept_words == item.spoken.words_within(700)
        assert peer.last_call().malformed == ["an event is not JSON"]

    with_client(peer, test)


def test_cancel_stops_the_generation_and_clear_the_audio(peer: RealtimePeer) -> None:
    peer.config = PeerConfig(api_key=KEY, reply=REPLY * 4, first_audio_delay_s=0.02, generation_speed=2.0)

    async def test(client: RawClient) -> None:
        await client.ready()
        client.send({"type": "response.create"})
        for _ in range(3):  # generated twice as fast as it plays: audio is waiting to be sent
            await client.next("response.output_audio_transcript.delta")
        client.send({"type": "response.cancel"})
        events = await client.until("response.done")
        assert events[-1]["response"]["status"] == "cancelled"
        assert events[-1]["response"]["status_details"]["reason"] == "client_cancelled"
        partial = next(e for e in events if e["type"] == "response.output_audio_transcript.done")["transcript"]
        assert partial and partial != REPLY * 4 and (REPLY * 4).startswith(partial)
        client.send({"type": "output_audio_buffer.clear"})
        cleared = await client.next("output_audio_buffer.cleared")
        assert cleared["response_id"] == events[-1]["response"]["id"]
        item = peer.last_call().assistant_items[0]
        assert item.status == "cancelled" and item.sent_ms < item.generated_ms

    with_client(peer, test)


def test_the_cli_refuses_a_bad_setup_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert peer_main(["--speed", "0"]) == 2
    assert peer_main(["--reply", " "]) == 2
    assert peer_main(["--piper-voice", "/nonexistent/voice.onnx"]) == 2
    assert peer_main(["--require-key-env", "SPINE_TEST_UNSET_VARIABLE"]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "error: --speed must be > 0",
        "error: --reply must say something",
        "error: --piper-voice /nonexistent/voice.onnx: no such file (give a Piper voice's .onnx, its .onnx.json "
        "beside it)",
        "error: --require-key-env: the environment variable SPINE_TEST_UNSET_VARIABLE is not set",
    ]
