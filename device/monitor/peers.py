"""Browser sessions: one aiortc peer each, a data channel for the records and controls, two audio tracks.

A session is made from a browser's offer (`Sessions.open`); it lives until its peer's connection closes or
fails, its data channel closes, or it never connects within `CONNECT_DEADLINE_S` - then its peer is closed and
its slot freed. Everything here runs on the monitor's asyncio thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from device.core.events import Event
from device.monitor import messages
from device.monitor.remote import ControlRefused, control_event
from device.monitor.token import Access
from device.monitor.tracks import AudioFanout, TapTrack

CONNECT_DEADLINE_S = 30.0
MAX_MESSAGE_BYTES = 4096
TRACK_SOURCES = ("cleaned", "speaker")  # in the order of the offer's audio transceivers


class OfferRefused(ValueError):
    """An offer that cannot make a session; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


class MessageBudget:
    """A token bucket: `rate_per_s` messages a second, bursts of as many."""

    def __init__(self, rate_per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate_per_s
        self._capacity = max(1.0, rate_per_s)
        self._tokens = self._capacity
        self._clock = clock
        self._at = clock()

    def allow(self) -> bool:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class Session:
    def __init__(self, peer: RTCPeerConnection, access: Access, budget: MessageBudget) -> None:
        self.peer = peer
        self.access = access
        self.budget = budget
        self.channel: Any = None
        self.tracks: list[TapTrack] = []
        self.dropped_messages = 0
        self.closed = False


class Sessions:
    def __init__(
        self,
        *,
        max_sessions: int,
        max_offer_bytes: int,
        max_messages_per_s: float,
        session_buffer_bytes: int,
        allow_control: bool,
        post_event: Callable[[Event], None],
        hello: Callable[[Session], dict[str, Any]],
        fanout: AudioFanout,
        rate_hz: int,
    ) -> None:
        self.max_sessions = max_sessions
        self.max_offer_bytes = max_offer_bytes
        self._max_messages_per_s = max_messages_per_s
        self._buffer_bytes = session_buffer_bytes
        self._allow_control = allow_control
        self._post_event = post_event
        self._hello = hello
        self._fanout = fanout
        self._rate_hz = rate_hz
        self.live: list[Session] = []
        self._closing: set[asyncio.Future[None]] = set()  # a reference each, so no close is collected unfinished
        self.connect_times_s: list[float] = []

    # ---- making a session
    def parse_offer(self, body: bytes) -> RTCSessionDescription:
        if len(body) > self.max_offer_bytes:
            raise self.too_large()
        try:
            offer = json.loads(body)
        # ValueError: also an integer of more than 4300 digits; RecursionError: nesting past Python's limit.
        except (ValueError, RecursionError):
            raise OfferRefused(400, 'malformed offer: not JSON; send {"type": "offer", "sdp": "v=0..."}') from None
        if not isinstance(offer, dict) or offer.get("type") != "offer" or not isinstance(offer.get("sdp"), str):
            raise OfferRefused(400, 'malformed offer: expected {"type": "offer", "sdp": "v=0..."}')
        if not offer["sdp"].startswith("v=0"):
            raise OfferRefused(400, "malformed offer: the sdp does not start with v=0")
        return RTCSessionDescription(sdp=offer["sdp"], type="offer")

    def too_large(self) -> OfferRefused:
        return OfferRefused(413, f"offer larger than {self.max_offer_bytes} bytes ([monitor] max_offer_bytes)")

    async def open(self, offer: RTCSessionDescription, access: Access) -> RTCSessionDescription:
        if len(self.live) >= self.max_sessions:
            raise OfferRefused(503, f"{self.max_sessions} sessions already open ([monitor] max_sessions)")
        began = time.monotonic()
        peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no STUN: works on a LAN with no internet
        session = Session(peer, access, MessageBudget(self._max_messages_per_s))
        self.live.append(session)
        self._watch(session, began)
        try:
            await peer.setRemoteDescription(offer)
            audio = [t for t in peer.getTransceivers() if t.kind == "audio"]
            for transceiver, source in zip(audio, TRACK_SOURCES, strict=False):
                track = TapTrack(source, self._rate_hz)
                transceiver.sender.replaceTrack(track)
                transceiver.direction = "sendonly"
                session.tracks.append(track)
                self._fanout.add(track)
            await peer.setLocalDescription(await peer.createAnswer())
        except Exception as error:  # aiortc raises many kinds on bad SDP; every one means: not a usable offer
            await self.close(session)
            raise OfferRefused(400, f"malformed offer: {_short(error)}") from None
        asyncio.get_running_loop().call_later(CONNECT_DEADLINE_S, self._drop_if_unconnected, session)
        description: RTCSessionDescription = peer.localDescription
        return description

    def _watch(self, session: Session, began: float) -> None:
        peer = session.peer

        @peer.on("datachannel")
        def on_datachannel(channel: Any) -> None:
            session.channel = channel
            self.connect_times_s.append(time.monotonic() - began)
            channel.send(messages.dumps(self._hello(session)))

            @channel.on("message")  # type: ignore[untyped-decorator]  # the channel is Any
            def on_message(data: Any) -> None:
                self._on_message(session, data)

            @channel.on("close")  # type: ignore[untyped-decorator]
            def on_close() -> None:
                self._closing.add(asyncio.ensure_future(self.close(session)))

        @peer.on("connectionstatechange")
        async def on_state() -> None:
            if peer.connectionState in ("failed", "closed"):
                await self.close(session)

    def _drop_if_unconnected(self, session: Session) -> None:
        if not session.closed and session.channel is None:
            self._closing.add(asyncio.ensure_future(self.close(session)))

    async def close(self, session: Session) -> None:
        self._closing = {future for future in self._closing if not future.done()}
        if session.closed:
            return
        session.closed = True
        if session in self.live:
            self.live.remove(session)
        for track in session.tracks:
            self._fanout.remove(track)
            track.stop()
        # aiortc fails to close a peer that a bad offer left half made (an SDP whose first track lacks its mid:
        # AttributeError from its SCTP transport, never set up); it is dropped all the same.
        with contextlib.suppress(Exception):
            await session.peer.close()

    async def close_all(self) -> None:
        for session in list(self.live):
            await self.close(session)

    # ---- records out
    def broadcast(self, text: str) -> None:
        for session in self.live:
            self.send(session, text)

    def send(self, session: Session, text: str) -> None:
        channel = session.channel
        if channel is None or channel.readyState != "open":
            return
        if channel.bufferedAmount > self._buffer_bytes:  # a slow browser: its records go, the others' do not wait
            session.dropped_messages += 1
            return
        channel.send(text)

    # ---- messages in
    def _on_message(self, session: Session, data: Any) -> None:
        if not session.budget.allow():
            self.send(session, messages.error_message("too many messages; [monitor] max_messages_per_s"))
            return
        if not isinstance(data, str) or len(data.encode()) > MAX_MESSAGE_BYTES:
            self.send(session, messages.error_message(f"a message must be JSON text under {MAX_MESSAGE_BYTES} bytes"))
            return
        try:
            message = json.loads(data)
        # ValueError: not JSON, or an integer past int()'s digits; RecursionError: nested past Python's limit.
        except (ValueError, RecursionError):
            self.send(session, messages.error_message("not JSON"))
            return
        if not isinstance(message, dict):
            self.send(session, messages.error_message('a message must be a JSON object with a "type"'))
            return
        if message.get("type") == "listen":  # audio on demand: allowed to every browser
            for track in session.tracks:
                track.listening = bool(message.get("on"))
            self._fanout.update_wanted()
            self.send(session, messages.dumps({"kind": "listen_result", "on": bool(message.get("on"))}))
            return
        self.send(session, messages.dumps(self._control(session, message)))

    def _control(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        kind = message.get("type")
        # Only a string is echoed: a number may be NaN or Infinity (Python's json reads them), which the page's
        # JSON.parse refuses, so it would never see the answer.
        result: dict[str, Any] = {
            "kind": "control_result",
            "type": kind if isinstance(kind, str) else None,
            "ok": False,
        }
        if session.access is not Access.ADMIN:
            return {**result, "error": "refused: this session's token is read-only (controls need the admin token)"}
        if not self._allow_control:
            return {**result, "error": "refused: remote control is off ([monitor] allow_control = false)"}
        try:
            event = control_event(message)
        except ControlRefused as refused:
            return {**result, "error": f"refused: {refused}"}
        self._post_event(event)  # the machine decides what it means in the state it is in
        return {**result, "ok": True, "event": type(event).__name__}


def _short(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 200 else text[:200] + "..."
