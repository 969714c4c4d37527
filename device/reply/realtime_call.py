"""One call to an OpenAI-Realtime-compatible server over WebRTC, on an asyncio loop: the device side's async half
(device/reply/realtime_client.py wraps it for threads; read that module's docstring first).

The call is one aiortc `RTCPeerConnection` with one send-receive audio transceiver (the microphone out, the
model's voice in) and the `oai-events` data channel. `open()` makes the offer, POSTs it to
`{base_url}/realtime/calls?model=...`, applies the answer, waits for the channel, sends `session.update` (the
server's turn detection off) and returns once `session.updated` came back: no audio is sent before that.

Remote audio is delivered as 16 kHz chunks tagged with the response (and its assistant item) it belongs to: the
latest `response.created`, until the client cancels it, the server clears its audio, or `STOPPED_GRACE_S` after
its `output_audio_buffer.stopped`. Audio that belongs to no response (a server that sends silence between
answers) is counted in `stray_ms` and not delivered.

Everything here runs on the loop's thread, except `received_ms`, which any thread may read.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from device.rates import SPINE_RATE_HZ
from device.reply.openai_config import printable
from device.reply.realtime_audio import PacedTrack, ResampleStream, mono_48k
from device.reply.realtime_config import (
    RTC_RATE_HZ,
    CallEnded,
    ConnectTimes,
    ExpectedRace,
    MalformedEvent,
    Notice,
    RealtimeConfig,
    RealtimeConnectError,
    RemoteAudio,
    scrub,
)
from device.reply.realtime_events import (
    ClientEvent,
    ConversationItemCreate,
    ConversationItemTruncate,
    ErrorEvent,
    ErrorInfo,
    InputAudioBufferClear,
    InputAudioBufferCommit,
    OtherClientEvent,
    OutputAudioBufferClear,
    OutputAudioBufferCleared,
    OutputAudioBufferStopped,
    RealtimeProtocolError,
    ResponseCancel,
    ResponseCreate,
    ResponseCreated,
    ResponseDone,
    ResponseOutputItemAdded,
    ServerEvent,
    SessionConfig,
    SessionUpdate,
    SessionUpdated,
    dumps,
    parse_server_event,
)

log = logging.getLogger(__name__)

CHANNEL_NAME = "oai-events"
MAX_ANSWER_BYTES = 65_536
"""An SDP answer is a few kilobytes; more is not an answer."""
STOPPED_GRACE_S = 0.3
"""Audio still arriving this long after `output_audio_buffer.stopped` is the response's tail (the receiver's
jitter buffer releases the last frames late); later audio belongs to no response."""
WATCH_PERIOD_S = 0.1
_SENT_REMEMBERED = 256
_HARMLESS_CODES = ("response_cancel_not_active",)
_RACING_SENDS = (ResponseCancel.type, OutputAudioBufferClear.type, ConversationItemTruncate.type)


class RealtimeCall:
    """One WebRTC call. `post_event` and `post_audio` are called on the loop's thread and must not block."""

    def __init__(
        self,
        config: RealtimeConfig,
        post_event: Callable[[ServerEvent | Notice], None],
        post_audio: Callable[[RemoteAudio], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._post_event, self._post_audio, self._clock = post_event, post_audio, clock
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # a public server needs no STUN from us
        self.mic = PacedTrack(config.tail_frames)
        self.pc.addTransceiver(self.mic, direction="sendrecv")
        self.channel = self.pc.createDataChannel(CHANNEL_NAME)
        self.ended: CallEnded | None = None
        self._session_ready: asyncio.Future[SessionUpdated] = asyncio.get_running_loop().create_future()
        self._session_event_id: str | None = None
        self._event_numbers = iter(range(1, 1 << 62))
        self._sent: deque[tuple[str, str]] = deque(maxlen=_SENT_REMEMBERED)  # (event_id, type)
        self._last_message_s = clock()
        self._awaiting_since_s: float | None = None  # a response was asked for and has not ended
        self._requested_unseen = False  # response.create sent, its response.created not yet seen
        self._silence_next = False  # cancelled before its response.created arrived
        self._response: str | None = None
        self._items: dict[str, str] = {}  # response id -> its assistant item id
        self._silenced: set[str] = set()
        self._stopped_at_s: dict[str, float] = {}
        self._received_lock = threading.Lock()
        self._received_ms: dict[str, float] = {}
        self.stray_ms = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._watch()

    # ------------------------------------------------------------------------------------------ opening

    async def open(self) -> ConnectTimes:
        config = self.config
        began = self._clock()
        await self.pc.setLocalDescription(await self.pc.createOffer())  # gathers the ICE candidates
        offered = self._clock()
        answer = await self._post_offer(self.pc.localDescription.sdp)
        answered = self._clock()
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        except Exception as error:  # aiortc raises many kinds on bad SDP; each means: not a usable answer
            message = f"{config.endpoint} answered an SDP it cannot use: {_short(error)}"
            raise RealtimeConnectError("protocol", message) from None
        await self._wait_open(config.media_timeout_s)
        channel_open = self._clock()
        update = SessionUpdate(SessionConfig(instructions=config.instructions, voice=config.voice))
        self._session_event_id = self.send(update)
        try:
            await asyncio.wait_for(asyncio.shield(self._session_ready), config.session_timeout_s)
        except TimeoutError:
            raise RealtimeConnectError(
                "session",
                f"the realtime server at {config.endpoint} did not confirm the session (no session.updated within "
                f"{config.session_timeout_s:g} s of session.update); it may be overloaded or not speak this protocol",
            ) from None
        ready = self._clock()
        return ConnectTimes(
            offer_ms=_ms(offered - began),
            answer_ms=_ms(answered - offered),
            media_ms=_ms(channel_open - answered),
            session_ms=_ms(ready - channel_open),
            total_ms=_ms(ready - began),
        )

    async def _post_offer(self, sdp: str) -> str:
        config = self.config
        headers = {"Content-Type": "application/sdp", "Accept": "application/sdp"}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        timeout = aiohttp.ClientTimeout(total=config.connect_timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.post(config.endpoint, params={"model": config.model}, data=sdp.encode(), headers=headers) as reply,
            ):
                body = await reply.content.read(MAX_ANSWER_BYTES + 1)
                status, content_type = reply.status, reply.headers.get("Content-Type", "(none)")
                retry_after = reply.headers.get("Retry-After")
        except TimeoutError:
            raise RealtimeConnectError(
                "timeout",
                f"the realtime server at {config.endpoint} did not answer the call within "
                f"{config.connect_timeout_s:g} s; check the server and [reply] base_url",
            ) from None
        except aiohttp.ClientConnectorError as error:
            raise RealtimeConnectError(
                "unreachable",
                f"cannot connect to the realtime server at {config.endpoint}: {_why(error)}; check the server is "
                "running and [reply] base_url",
            ) from None
        except aiohttp.ClientError as error:
            raise RealtimeConnectError(
                "unreachable", f"the call to {config.endpoint} failed: {scrub(_why(error), config.api_key)}"
            ) from None
        return _answer_sdp(config, status, content_type, body, retry_after)

    async def _wait_open(self, timeout_s: float) -> None:
        if self.channel.readyState == "open":
            return
        opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.channel.on("open", lambda: _settle(opened))
        try:
            await asyncio.wait_for(opened, timeout_s)
        except TimeoutError:
            state = self.pc.iceConnectionState
            raise RealtimeConnectError(
                "media",
                f"the server at {self.config.endpoint} answered, but the WebRTC connection did not come up within "
                f"{timeout_s:g} s (ICE {state}); check that UDP reaches the server (a firewall, a VPN)",
            ) from None

    # ------------------------------------------------------------------------------------------ sending

    def send(self, event: ClientEvent) -> str | None:
        """Send one client event (numbered, so the server's errors can name it); its event_id, or None when the
        call has ended (the event goes nowhere: the CallEnded notice already said why)."""
        if self.ended is not None or self.channel.readyState != "open":
            return None
        event_id = event.event_id or f"spine_{next(self._event_numbers)}"
        if not isinstance(event, OtherClientEvent):
            event = dataclasses.replace(event, event_id=event_id)
        self._sent.append((event_id, event.type))
        self.channel.send(dumps(event))
        return event_id

    def begin_turn(self) -> None:
        """Empty the server's input buffer and start sending the microphone."""
        if self.ended is not None:
            return
        self.send(InputAudioBufferClear())
        self.mic.start()

    async def commit_and_respond(self, drain_timeout_s: float) -> None:
        """Once the microphone audio fed so far has gone out: commit it and ask for a response."""
        drained: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.mic.drain(lambda: _settle(drained))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drained, drain_timeout_s)  # a stuck sender must not hold the turn: commit anyway
        self.send(InputAudioBufferCommit())
        if self.send(ResponseCreate()) is not None:
            self._awaiting_since_s = self._clock()
            self._requested_unseen = True

    async def text_and_respond(self, text: str) -> None:
        """A typed request: `text` joins the conversation as the user's message, and a response is asked for (the
        microphone plays no part; its input buffer is left as it is)."""
        self.send(ConversationItemCreate(text))
        if self.send(ResponseCreate()) is not None:
            self._awaiting_since_s = self._clock()
            self._requested_unseen = True

    def discard_turn(self) -> None:
        """Stop sending the microphone (what was not sent yet was discarded by the caller, in order with its
        feeding) and empty the server's input buffer."""
        self.mic.drain()
        self.send(InputAudioBufferClear())

    def cancel(self, audio_end_ms: int | None, item_id: str | None) -> None:
        """Barge-in: stop the response (generation and the audio the server buffered) and cut the item."""
        self.mic.drain()  # a turn still open is over too: its audio goes out, then the microphone idles
        if self._response is not None:
            self._silenced.add(self._response)
        if self._requested_unseen:
            self._silence_next = True
        self._awaiting_since_s = None
        self.send(ResponseCancel())
        self.send(OutputAudioBufferClear())
        if audio_end_ms is not None and item_id is not None:
            self.send(ConversationItemTruncate(item_id=item_id, audio_end_ms=audio_end_ms))

    def received_ms(self, item_id: str) -> int:
        """Milliseconds of the item's audio received so far (counted at 48 kHz: the server's own timeline)."""
        with self._received_lock:
            return int(self._received_ms.get(item_id, 0.0))

    # ------------------------------------------------------------------------------------------ receiving

    def _watch(self) -> None:
        pc, channel = self.pc, self.channel

        @pc.on("track")
        def on_track(track: Any) -> None:
            self._spawn(self._read_remote(track))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self._end("dropped", f"the WebRTC connection to {self.config.endpoint} is {pc.connectionState}")

        @channel.on("message")
        def on_message(data: Any) -> None:
            self._on_message(data)

        @channel.on("close")
        def on_close() -> None:
            self._end("dropped", f"the server at {self.config.endpoint} closed the events channel")

        self._spawn(self._watch_stall())

    def _on_message(self, data: Any) -> None:
        self._last_message_s = self._clock()
        try:
            event = parse_server_event(data)
        except RealtimeProtocolError as problem:
            log.warning("realtime: ignored a malformed event: %s", problem)
            self._post_event(MalformedEvent(str(problem)))
            return
        self._note(event)
        self._post_event(self._classified(event))

    def _note(self, event: ServerEvent) -> None:
        """Keep what the call itself needs to know: the session, the current response, its item, its audio."""
        if not self._session_ready.done():
            if isinstance(event, SessionUpdated):
                self._session_ready.set_result(event)
            elif isinstance(event, ErrorEvent) and event.error.event_id in (None, self._session_event_id):
                self._session_ready.set_exception(_session_refused(self.config, event.error))
            return
        if isinstance(event, ResponseCreated):
            self._response, self._requested_unseen = event.response.id, False
            if self._silence_next:
                self._silenced.add(event.response.id)
                self._silence_next = False
        elif isinstance(event, ResponseOutputItemAdded) and event.item.role in (None, "assistant"):
            self._items.setdefault(event.response_id, event.item.id)
        elif isinstance(event, ResponseDone) and event.response.id == self._response:
            self._awaiting_since_s = None
        elif isinstance(event, ErrorEvent) and self._sent_type(event.error.event_id) == ResponseCreate.type:
            self._awaiting_since_s, self._requested_unseen = None, False  # refused: no response is coming
        elif isinstance(event, OutputAudioBufferStopped) and event.response_id is not None:
            self._stopped_at_s[event.response_id] = self._clock()
        elif isinstance(event, OutputAudioBufferCleared) and event.response_id is not None:
            self._silenced.add(event.response_id)

    def _classified(self, event: ServerEvent) -> ServerEvent | Notice:
        """An error that answers a cancel, clear or truncate racing the response's own end is harmless."""
        if not isinstance(event, ErrorEvent):
            return event
        error = event.error
        sent = self._sent_type(error.event_id)
        if error.code in _HARMLESS_CODES or (sent in _RACING_SENDS) or error.param == "audio_end_ms":
            return ExpectedRace(error, sent or _guess_sent(error))
        return event

    def _sent_type(self, event_id: str | None) -> str | None:
        if event_id is None:
            return None
        return next((kind for sent_id, kind in self._sent if sent_id == event_id), None)

    async def _read_remote(self, track: Any) -> None:
        down = ResampleStream(RTC_RATE_HZ, SPINE_RATE_HZ)
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self._on_remote_audio(mono_48k(frame), down)

    def _on_remote_audio(self, samples: Any, down: ResampleStream) -> None:
        response = self._audio_response()
        duration_ms = len(samples) * 1000 / RTC_RATE_HZ
        if response is None:
            self.stray_ms += duration_ms
            return
        item = self._items.get(response)
        with self._received_lock:
            key = item or response
            self._received_ms[key] = received = self._received_ms.get(key, 0.0) + duration_ms
        out = down.feed(samples)
        if len(out):
            self._post_audio(RemoteAudio(out, response, item, received))

    def _audio_response(self) -> str | None:
        response = self._response
        if response is None or response in self._silenced:
            return None
        stopped_at_s = self._stopped_at_s.get(response)
        if stopped_at_s is not None and self._clock() - stopped_at_s > STOPPED_GRACE_S:
            return None
        return response

    async def _watch_stall(self) -> None:
        while self.ended is None:
            await asyncio.sleep(WATCH_PERIOD_S)
            since_s = self._awaiting_since_s
            if since_s is None:
                continue
            quiet_s = self._clock() - max(since_s, self._last_message_s)
            if quiet_s > self.config.stall_timeout_s:
                self._end(
                    "stalled",
                    f"the realtime server at {self.config.endpoint} sent no event for {quiet_s:.1f} s while a "
                    f"response was under way ([reply] stall_timeout_s = {self.config.stall_timeout_s:g})",
                )

    # ------------------------------------------------------------------------------------------ ending

    def _end(self, reason: str, message: str) -> None:
        if self.ended is not None:
            return
        self.ended = CallEnded(reason, message)  # type: ignore[arg-type]  # reason is one of CallEnded's
        if not self._session_ready.done():
            self._session_ready.set_exception(RealtimeConnectError("media", message))
            self._session_ready.exception()  # retrieved: a call ending before anyone waits is not an error
        self._post_event(self.ended)
        self.mic.stop()
        self._spawn(self.pc.close())

    async def close(self) -> None:
        """Hang up (idempotent)."""
        self._end("closed", "the call was closed by the device")
        await self.pc.close()
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _answer_sdp(config: RealtimeConfig, status: int, content_type: str, body: bytes, retry_after: str | None) -> str:
    """The SDP answer in an HTTP reply, or the `RealtimeConnectError` that says what the server meant."""
    where = config.endpoint
    if status in (200, 201):
        text = body.decode("utf-8", errors="replace")
        kind = content_type.split(";")[0].strip().lower()
        if kind != "application/sdp" or not text.startswith("v=0") or len(body) > MAX_ANSWER_BYTES:
            raise RealtimeConnectError(
                "protocol",
                f"{where} answered HTTP {status} with {printable(content_type[:60])!r}, not an SDP answer; is it an "
                "OpenAI-Realtime-compatible server (WebRTC calls)?",
            )
        return text
    said = _error_said(body, config.api_key, include_message=status not in (401, 403))
    if status in (401, 403):
        if not config.api_key:
            env = config.api_key_env
            fix = f"set the environment variable {env}" if env else "set [reply] api_key_env or api_key_file"
            return _raise("auth", f"the realtime server at {where} wants an API key (HTTP {status}{said}); {fix}")
        source = f"the environment variable {config.api_key_env}" if config.api_key_env else "[reply] api_key_file"
        return _raise(
            "auth", f"the realtime server at {where} rejected the API key (HTTP {status}{said}); check {source}"
        )
    if status == 404:
        return _raise(
            "rejected",
            f"the realtime server has no {where} or no model {config.model!r} (HTTP 404{said}); check [reply] "
            "base_url (it usually ends in /v1) and [reply] model",
        )
    if status == 429:
        wait = f"retry after {printable(retry_after[:20])} s" if retry_after else "wait and retry"
        return _raise("rejected", f"the realtime server at {where} is rate-limiting calls (HTTP 429{said}); {wait}")
    kind = "server" if status >= 500 else "rejected"
    return _raise(kind, f"the realtime server at {where} refused the call (HTTP {status}{said})")


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _raise(kind: str, message: str) -> str:
    raise RealtimeConnectError(kind, message)


def _error_said(body: bytes, api_key: str | None, include_message: bool) -> str:
    """`: code: message` from an OpenAI-style error body (the message left out where a server would quote the
    key, even masked), the key scrubbed; "" when the body says nothing usable."""
    # The key is scrubbed before the text is cut to 200 characters: a key cut in two no longer matches it, and
    # its first part would be shown.
    try:
        error = json.loads(body.decode("utf-8")).get("error")
    # ValueError: not UTF-8 or not JSON, or an integer past int()'s 4300 digits; RecursionError: nesting past
    # Python's limit; AttributeError: JSON, but not an object.
    except (ValueError, RecursionError, AttributeError):
        text = scrub(" ".join(body.decode("utf-8", errors="replace").split()), api_key)[:200]
        return f": {printable(text)}" if text and include_message else ""
    if not isinstance(error, dict):
        return ""
    code = error.get("code") if isinstance(error.get("code"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) and include_message else None
    parts = [printable(scrub(part, api_key)[:200]) for part in (code, message) if part]
    return f": {': '.join(parts)}" if parts else ""


def _session_refused(config: RealtimeConfig, error: ErrorInfo) -> RealtimeConnectError:
    code = f"{error.code}: " if error.code else ""
    said = printable(scrub(error.message, config.api_key)[:200])  # scrubbed whole, as in `_error_said`
    return RealtimeConnectError(
        "session", f"the realtime server at {config.endpoint} refused the session.update ({code}{said})"
    )


def _guess_sent(error: ErrorInfo) -> str:
    return ResponseCancel.type if error.code in _HARMLESS_CODES else ConversationItemTruncate.type


def _why(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    cause = getattr(error, "os_error", None)
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(error) or type(error).__name__


def _short(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return printable(text[:200])


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
