"""A test peer that speaks the OpenAI Realtime protocol over real WebRTC (aiortc), on loopback, with faults.

It serves `POST {base}/realtime/calls` as the real API does for WebRTC: the SDP offer as `application/sdp`, the
key as `Authorization: Bearer ...` (checked when `PeerConfig.api_key` is set), the model as `?model=`; it
answers `201 Created` with the SDP answer and a `Location: /v1/realtime/calls/{call_id}` header. Each call is
an aiortc peer connection: the client's `oai-events` data channel carries the events, its audio track the
microphone (Opus, 48 kHz), and the peer's audio track the model's voice (Opus, 48 kHz, paced in real time).
What each call does with the events is device/testing/realtime_peer_call.py's docstring; the voice is a
deterministic tone per word (device/testing/realtime_peer_voice.py) whose words sit at known offsets, so a
truncation can be checked to the word; what it emulates and what it does not is in docs/realtime.md.

It records each call (`calls`: every event received and sent, the microphone audio committed, the items and what
truncation left of them) and `wait(predicate)` blocks until a record satisfies a test. It runs on its own thread and
event loop; `config` may be replaced between calls and responses. Faults (`PeerConfig.fault`): refuse the call (401,
500), answer it and never connect (ICE unanswered), drop the connection mid-answer, stall the events channel
mid-answer or before `session.updated`, a slow first audio. Connection refused: point the client at a port nobody
serves.

From the command line: `spine realtime-peer --help` (device/testing/realtime_peer_cli.py). A stand-in for
tests and for trying the realtime backend: the daemon never uses it.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from device.testing.loop_server import LoopServer
from device.testing.realtime_peer_records import CallRecord, PeerConfig

# aiohttp and aiortc are imported where they are used: `spine` builds its parser with the CLI module, which
# imports this one, and importing them there would slow every `spine` command.
if TYPE_CHECKING:
    from aiohttp import web

    from device.testing.realtime_peer_call import PeerCall

MAX_OFFER_BYTES = 65_536
CALL_PATH = "/v1/realtime/calls"


class RealtimePeer:
    """The test peer on `host` (127.0.0.1, an ephemeral port by default), on a background thread."""

    def __init__(
        self, config: PeerConfig | None = None, host: str = "127.0.0.1", port: int = 0, log_requests: bool = False
    ) -> None:
        self.config = config or PeerConfig()
        self.base_url = ""
        self._changed = threading.Condition()  # guards every record; notified on every change
        self._calls: list[CallRecord] = []
        self._authorizations: list[str | None] = []
        self._live: list[PeerCall] = []
        self._numbers = itertools.count(1)
        self._server = LoopServer("realtime-peer", host, port, log_requests)

    # ------------------------------------------------------------------------------------------ lifecycle

    def start(self) -> str:
        """Serve; returns the base URL to give a client, e.g. "http://127.0.0.1:41234/v1"."""
        self.base_url = self._server.start(self._app)
        return self.base_url

    def stop(self) -> None:
        """Stop serving; every call is hung up."""
        self._server.stop(lambda: self._close_calls("the peer stopped"))

    def drop_calls(self) -> None:
        """Hang up every live call now (as a server restarting would)."""
        if self._server.serving:
            self._server.run(lambda: self._close_calls("dropped by the test"))

    def __enter__(self) -> RealtimePeer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _app(self) -> web.Application:
        from aiohttp import web

        app = web.Application(client_max_size=MAX_OFFER_BYTES)
        app.router.add_post(CALL_PATH, self._call)
        return app

    async def _close_calls(self, why: str) -> None:
        for call in list(self._live):
            await call.close(why)
        self._live.clear()

    # ------------------------------------------------------------------------------------------ records

    @property
    def calls(self) -> list[CallRecord]:
        """Every call made so far, in order (the records themselves: read them inside `wait`, or once quiet)."""
        with self._changed:
            return list(self._calls)

    @property
    def authorizations(self) -> list[str | None]:
        """The Authorization header of each call's offer (None when absent), in order."""
        with self._changed:
            return list(self._authorizations)

    def last_call(self) -> CallRecord:
        with self._changed:
            if not self._calls:
                raise AssertionError("the peer has had no call")
            return self._calls[-1]

    def wait(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Block until `predicate()` holds (checked under the records' lock on every change) or `timeout_s`
        passes; returns whether it held."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout_s)

    # ------------------------------------------------------------------------------------------ the call endpoint

    async def _call(self, request: web.Request) -> web.Response:
        from aiohttp import web

        config = self.config
        authorization = request.headers.get("Authorization")
        with self._changed:
            self._authorizations.append(authorization)
            self._changed.notify_all()
        if config.fault == "http_500":
            return _error(500, "The server had an error while processing your request.", "server_error", None)
        if config.fault == "http_401" or (config.api_key is not None and authorization != f"Bearer {config.api_key}"):
            return _refuse_key(authorization)
        kind = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/sdp":
            return _error(400, "This test peer takes the SDP offer as application/sdp.", "invalid_request_error", None)
        offer = (await request.read()).decode("utf-8", errors="replace")
        if not offer.startswith("v=0") or "m=audio" not in offer or "m=application" not in offer:
            message = "The offer must be an SDP with an audio section and a data channel."
            return _error(400, message, "invalid_request_error", "invalid_offer")
        try:
            answer, number = await self._answer(offer, request.query.get("model"))
        except ValueError as problem:
            return _error(400, f"Invalid SDP offer: {problem}", "invalid_request_error", "invalid_offer")
        headers = {"Location": f"{CALL_PATH}/rtc_{number:04d}"}
        return web.Response(status=201, text=answer, content_type="application/sdp", headers=headers)

    async def _answer(self, offer: str, model: str | None) -> tuple[str, int]:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        from device.testing.realtime_peer_call import PeerCall

        number = next(self._numbers)
        record = CallRecord(number, model)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        call = PeerCall(pc, lambda: self.config, record, self._changed)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            pc.addTrack(call.voice_track)  # takes the offer's audio transceiver: sendrecv
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as error:  # aiortc raises many kinds on bad SDP; each means: not a usable offer
            await pc.close()
            raise ValueError(str(error)[:200] or type(error).__name__) from None
        with self._changed:
            self._calls.append(record)
            self._changed.notify_all()
        sdp: str = pc.localDescription.sdp
        if self.config.fault == "ice_unanswered":  # the answer is sent, but nothing here will ever answer ICE
            await call.close("closed before ICE by the fault ice_unanswered")
            return sdp, number
        self._live = [live for live in self._live if live.record.ended is None]
        self._live.append(call)
        return sdp, number


def _refuse_key(authorization: str | None) -> web.Response:
    """401 as the real API words it: it names the key, masked (so a client must not show this message)."""
    if authorization is None or not authorization.startswith("Bearer "):
        message = "You didn't provide an API key. You need to provide your API key in an Authorization header."
        return _error(401, message, "invalid_request_error", None)
    key = authorization.removeprefix("Bearer ")
    masked = f"{key[:3]}***{key[-4:]}" if len(key) > 8 else "***"
    message = f"Incorrect API key provided: {masked}. You can find your API key at https://platform.openai.com."
    return _error(401, message, "invalid_request_error", "invalid_api_key")


def _error(status: int, message: str, kind: str, code: str | None) -> web.Response:
    from aiohttp import web

    body: dict[str, Any] = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.json_response(body, status=status)
