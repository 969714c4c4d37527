"""The monitor's WebRTC side with a real aiortc peer on loopback: records on the data channel, audio on the
tracks, controls by access, malformed and too many messages, the session limit and a closed peer freed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import ClientSession
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from device.core import events as ev
from device.core.events import Event
from device.monitor.peers import MessageBudget
from device.monitor.server import Monitor
from device.monitor.token import Tokens, load_or_create_tokens
from tests.test_monitor_server import make_monitor

WAIT_S = 15.0


class Client:
    """A browser stand-in: one aiortc peer with the page's data channel and two receive-only audio tracks."""

    def __init__(self) -> None:
        self.peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.channel = self.peer.createDataChannel("monitor")
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.channel.on("message", lambda text: self.received.put_nowait(json.loads(text)))
        self.peer.addTransceiver("audio", direction="recvonly")
        self.peer.addTransceiver("audio", direction="recvonly")

    async def connect(self, base: str, token: str) -> tuple[int, dict[str, Any]]:
        await self.peer.setLocalDescription(await self.peer.createOffer())
        offer = {"type": "offer", "sdp": self.peer.localDescription.sdp}
        async with (
            ClientSession() as http,
            http.post(base + "/offer", json=offer, headers={"Authorization": f"Bearer {token}"}) as answer,
        ):
            body = await answer.json()
            if answer.status != 200:
                return answer.status, body
        await self.peer.setRemoteDescription(RTCSessionDescription(**body))
        return 200, await self.next("hello")

    async def next(self, kind: str) -> dict[str, Any]:
        while True:
            message = await asyncio.wait_for(self.received.get(), WAIT_S)
            if message["kind"] == kind:
                return message

    def send(self, message: Any) -> None:
        self.channel.send(message if isinstance(message, str) else json.dumps(message))


@pytest.fixture
def tokens(tmp_path: Path) -> Tokens:
    return load_or_create_tokens(tmp_path / "state")


@pytest.fixture
def served(tmp_path: Path, tokens: Tokens) -> Iterator[tuple[Monitor, str, list[Event]]]:
    monitor, posted = make_monitor(tmp_path, allow_control=True, max_sessions=2, max_messages_per_s=5.0)
    yield monitor, f"http://127.0.0.1:{monitor.port}", posted
    monitor.stop()


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


async def until(condition: Callable[[], bool]) -> None:
    """Wait for something the server's thread does (a peer closing): bounded, polled on the event loop."""
    for _ in range(int(WAIT_S / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_steps_and_levels_stream_on_the_data_channel(served: tuple[Monitor, str, list[Event]], tokens: Tokens) -> None:
    monitor, base, _ = served
    monitor.feed.observe(0, ev.Started(), "Idle", ())  # before the browser: sent in the hello's history

    async def test() -> None:
        client = Client()
        status, hello = await client.connect(base, tokens.read_only)
        assert status == 200 and hello["access"] == "read-only" and hello["control"] is False
        assert [step["event"]["type"] for step in hello["history"]] == ["Started"]
        assert hello["tracks"] == ["cleaned", "speaker"]
        monitor.feed.observe(16000, ev.WakeDetected("hey_jarvis", 0.9, 16000), "Listening", ())
        step = await client.next("step")
        assert (step["from"], step["state"], step["event"]["type"], step["t_s"]) == (
            "Idle",
            "Listening",
            "WakeDetected",
            1.0,
        )
        loud = np.full(160, 3000, np.int16)
        for index in range(5):  # 5 periods of 10 ms = the 800-sample levels interval
            monitor.feed.period(index * 160, loud, loud // 10, np.zeros(160, np.int16), 0.7, 0.1, 12.5)
        levels = await client.next("levels")
        assert levels["mic_dbfs"] == pytest.approx(-20.8, abs=0.1) and levels["speaker_dbfs"] == -100.0
        assert (levels["vad_probability"], levels["erle_db"]) == (0.7, 12.5)
        await client.peer.close()

    run(test)


def test_audio_flows_on_the_tracks_only_once_asked_for(
    served: tuple[Monitor, str, list[Event]], tokens: Tokens
) -> None:
    monitor, base, _ = served

    async def test() -> None:
        client = Client()
        await client.connect(base, tokens.read_only)
        assert monitor.feed.audio_wanted is False
        client.send({"type": "listen", "on": True})
        assert (await client.next("listen_result"))["on"] is True
        assert monitor.feed.audio_wanted is True
        tone = (3000 * np.sin(np.arange(160) * 2 * np.pi * 440 / 16000)).astype(np.int16)
        for index in range(10):
            monitor.feed.period(index * 160, tone, tone, tone, 0.0, 0.0, None)
        receivers = [transceiver.receiver for transceiver in client.peer.getTransceivers()]
        for receiver in receivers:
            frame = await asyncio.wait_for(receiver.track.recv(), WAIT_S)
            assert frame.samples > 0
        await client.peer.close()
        await until(lambda: monitor.feed.audio_wanted is False)

    run(test)


def test_a_read_only_session_cannot_control(served: tuple[Monitor, str, list[Event]], tokens: Tokens) -> None:
    _, base, posted = served

    async def test() -> None:
        client = Client()
        await client.connect(base, tokens.read_only)
        client.send({"type": "mute", "muted": True})
        result = await client.next("control_result")
        assert result["ok"] is False and "read-only" in result["error"]
        await client.peer.close()

    run(test)
    assert posted == []


def test_an_admin_control_enters_as_an_event_and_bad_messages_get_an_error(
    served: tuple[Monitor, str, list[Event]], tokens: Tokens
) -> None:
    _, base, posted = served

    async def test() -> None:
        client = Client()
        _, hello = await client.connect(base, tokens.admin)
        assert hello["control"] is True
        client.send({"type": "mute", "muted": True})
        assert (await client.next("control_result"))["event"] == "MuteChanged"
        for bad, phrase in (("{nope", "not JSON"), ("[1]", "JSON object"), ("x" * 5000, "under 4096 bytes")):
            client.send(bad)
            assert phrase in (await client.next("error"))["error"]
        client.send({"type": "mute", "muted": "yes"})
        assert "true or false" in (await client.next("control_result"))["error"]
        await client.peer.close()

    run(test)
    assert posted == [ev.MuteChanged(True, "monitor")]


def test_control_is_refused_when_off_even_for_the_admin(tmp_path: Path, tokens: Tokens) -> None:
    monitor, posted = make_monitor(tmp_path)  # allow_control defaults to off

    async def test() -> None:
        client = Client()
        await client.connect(f"http://127.0.0.1:{monitor.port}", tokens.admin)
        client.send({"type": "mute", "muted": True})
        assert "allow_control" in (await client.next("control_result"))["error"]
        await client.peer.close()

    try:
        run(test)
    finally:
        monitor.stop()
    assert posted == []


def test_the_session_limit_holds_and_a_closed_peer_frees_its_slot(
    served: tuple[Monitor, str, list[Event]], tokens: Tokens
) -> None:
    monitor, base, _ = served

    async def test() -> None:
        first, second, third = Client(), Client(), Client()
        assert (await first.connect(base, tokens.read_only))[0] == 200
        assert (await second.connect(base, tokens.read_only))[0] == 200
        status, refused = await third.connect(base, tokens.read_only)
        assert status == 503 and "max_sessions" in refused["error"]
        await first.peer.close()
        await until(lambda: len(monitor.sessions.live) == 1)
        assert (await Client().connect(base, tokens.read_only))[0] == 200
        await second.peer.close()
        await third.peer.close()

    run(test)


def test_a_message_flood_is_refused_beyond_the_rate() -> None:
    now = [0.0]
    budget = MessageBudget(5.0, clock=lambda: now[0])
    assert [budget.allow() for _ in range(7)] == [True] * 5 + [False] * 2
    now[0] += 0.2  # one message's worth of time
    assert (budget.allow(), budget.allow()) == (True, False)
