"""One call to the test peer (device/testing/realtime_peer.py): the server side of the Realtime protocol over one
aiortc peer connection, on the peer's event loop. Read the peer's module docstring first.

The protocol, as the peer plays it (docs/realtime.md has the sources and what it leaves out):

* the events channel opens -> `session.created` (server VAD on, as a real server's default);
* `session.update` -> `session.updated` with the merged session; microphone audio that arrives before it is
  counted (`audio_before_session_ms`) and dropped;
* audio after that fills the input buffer; `input_audio_buffer.commit` makes it a user item
  (`input_audio_buffer.committed`, `conversation.item.added`/`.done`), or is refused under 100 ms
  (`input_audio_buffer_commit_empty`); `input_audio_buffer.clear` empties it;
* `response.create` -> `response.created`, `response.output_item.added`, `conversation.item.added`,
  `response.content_part.added` at once; after `first_audio_delay_s` the reply is generated `generation_speed`
  times faster than real time: each word's transcript delta when its audio is generated, the audio queued on
  the voice track, which plays it in real time; the first frame sent -> `output_audio_buffer.started`; all
  generated -> `response.output_audio.done`, `response.output_audio_transcript.done`,
  `response.content_part.done`, `response.output_item.done`, `conversation.item.done`, `response.done`; all
  played -> `output_audio_buffer.stopped`;
* `response.cancel` stops the generation (`response.done` with status cancelled, reason client_cancelled); the
  audio already generated still plays unless `output_audio_buffer.clear` (-> `output_audio_buffer.cleared`);
  with no response being generated: `response_cancel_not_active`;
* `conversation.item.truncate` cuts an assistant item's audio at `audio_end_ms` (at most the audio generated,
  else `invalid_value` "Audio content of Xms is already shorter than Yms") and deletes its transcript, as the
  real server does; the words wholly within the kept audio are recorded as what the item now holds.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from device.reply.openai_config import printable
from device.reply.realtime_audio import FramePieces, PacedTrack, mono_48k
from device.reply.realtime_config import RTC_RATE_HZ
from device.reply.realtime_events import (
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
    SessionCreated,
    SessionInfo,
    SessionUpdate,
    SessionUpdated,
    TranscriptDelta,
    TranscriptDone,
    dumps,
    parse_client_event,
)
from device.testing.realtime_peer_records import AssistantItem, CallRecord, PeerConfig, PeerTurn, UserItem
from device.testing.realtime_peer_voice import ToneVoice

GENERATION_STEP_S = 0.04
MIN_COMMIT_MS = 100.0
KNOWN_CLIENT_EVENTS = (
    "session.update", "input_audio_buffer.append", "input_audio_buffer.commit", "input_audio_buffer.clear",
    "conversation.item.create", "conversation.item.retrieve", "conversation.item.truncate", "conversation.item.delete",
    "response.create", "response.cancel", "output_audio_buffer.clear",
)  # fmt: skip


class _Response:
    def __init__(self, response_id: str, item: AssistantItem) -> None:
        self.id = response_id
        self.item = item
        self.generating = True
        self.cancelled = False
        self.said: list[str] = []  # the transcript deltas sent
        self.started_playing = False
        self.requested_at_s = time.monotonic()
        self.playout_over = False  # stopped (all played) or cleared


class PeerCall:
    """The server side of one call. Everything runs on the peer's loop; records change under `changed`."""

    def __init__(
        self,
        pc: RTCPeerConnection,
        config: Callable[[], PeerConfig],
        record: CallRecord,
        changed: threading.Condition,
    ) -> None:
        self.pc = pc
        self._config = config  # the peer's current one: a test may swap it between responses
        self.record = record
        self._changed = changed
        self._ids = itertools.count(1)
        self.channel: Any = None
        self.voice_track = PacedTrack(on_frame=self._on_frame)
        self._session = SessionInfo(
            id=f"sess_{record.number:04d}", model=record.model, instructions="You are a test peer.", voice="tone",
            turn_detection="server_vad",
        )  # fmt: skip
        self._session_ready = False
        self._input: list[np.ndarray[Any, np.dtype[np.int16]]] = []
        self._input_ms = 0.0
        self._last_item_id: str | None = None
        self._responses: dict[str, _Response] = {}
        self._generating: _Response | None = None
        self._playing: list[_Response] = []  # responses whose audio is queued or playing, oldest first
        self._stalled = False
        self._closed = False
        self._tasks: set[asyncio.Future[Any]] = set()
        self._watch()

    # ------------------------------------------------------------------------------------------ wiring

    def _watch(self) -> None:
        pc = self.pc

        @pc.on("datachannel")
        def on_datachannel(channel: Any) -> None:
            if channel.label != "oai-events" or self.channel is not None:
                return
            self.channel = channel
            channel.on("message", self._on_message)
            self._send(SessionCreated(self._session, self._event_id()))

        @pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "audio":
                self._spawn(self._read_input(track))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self._spawn(self.close("the client went away" if not self._closed else "closed"))

    async def close(self, why: str) -> None:
        if self._closed:
            return
        self._closed = True
        with self._changed:
            self.record.ended = why
            self._changed.notify_all()
        self.voice_track.stop()
        await self.pc.close()
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------------------------------ events in

    def _on_message(self, data: Any) -> None:
        try:
            event = parse_client_event(data)
        except RealtimeProtocolError as problem:
            with self._changed:
                self.record.malformed.append(str(problem))
                self._changed.notify_all()
            self._error("invalid_request_error", "invalid_event", str(problem))
            return
        with self._changed:
            self.record.received.append(event)
            self._changed.notify_all()
        if self._stalled:
            return  # a stalled server reads nothing and answers nothing
        self._handle(event)

    def _handle(self, event: ClientEvent) -> None:
        match event:
            case SessionUpdate():
                self._session_update(event)
            case InputAudioBufferCommit():
                self._commit(event)
            case InputAudioBufferClear():
                self._input, self._input_ms = [], 0.0
                self._send(InputAudioBufferCleared(self._event_id()))
            case ConversationItemCreate():
                self._item_create(event)
            case ResponseCreate():
                self._response_create(event)
            case ResponseCancel():
                self._response_cancel(event)
            case OutputAudioBufferClear():
                self._output_clear()
            case ConversationItemTruncate():
                self._truncate(event)
            case OtherClientEvent():
                self._unknown(event)

    def _session_update(self, event: SessionUpdate) -> None:
        wanted = event.session
        current = self._session
        self._session = SessionInfo(
            id=current.id,
            model=current.model,
            instructions=wanted.instructions if wanted.instructions is not None else current.instructions,
            voice=wanted.voice if wanted.voice is not None else current.voice,
            turn_detection=wanted.turn_detection if wanted.turn_detection is not None else current.turn_detection,
        )
        with self._changed:
            self.record.turn_detection = self._session.turn_detection
            self._changed.notify_all()
        if self._config().fault == "stall_session":
            self._stalled = True
            return
        self._session_ready = True
        self._send(SessionUpdated(self._session, self._event_id()))

    def _commit(self, event: InputAudioBufferCommit) -> None:
        if self._input_ms < MIN_COMMIT_MS:
            self._error(
                "invalid_request_error",
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, but buffer "
                f"only has {self._input_ms:.2f}ms of audio.",
                event_id=event.event_id,
            )
            return
        item_id = self._new_id("item")
        audio = np.concatenate(self._input)
        self._input, self._input_ms = [], 0.0
        with self._changed:
            self.record.user_items.append(UserItem(item_id, audio, None))
            self._changed.notify_all()
        previous, self._last_item_id = self._last_item_id, item_id
        self._send(InputAudioBufferCommitted(item_id, previous, self._event_id()))
        self._announce_user_item(item_id, previous, {"type": "input_audio", "transcript": None})

    def _item_create(self, event: ConversationItemCreate) -> None:
        item_id = self._new_id("item")
        with self._changed:
            self.record.user_items.append(UserItem(item_id, None, event.text))
            self._changed.notify_all()
        previous, self._last_item_id = self._last_item_id, item_id
        self._announce_user_item(item_id, previous, {"type": "input_text", "text": event.text}, role=event.role)

    def _announce_user_item(self, item_id: str, previous: str | None, part: dict[str, Any], role: str = "user") -> None:
        item = {"id": item_id, "object": "realtime.item", "type": "message", "role": role, "status": "completed"}
        item_with_content = {**item, "content": [part]}
        for kind in ("conversation.item.added", "conversation.item.done"):
            self._send_raw(kind, {"previous_item_id": previous, "item": item_with_content})

    def _response_create(self, event: ResponseCreate) -> None:
        if self._generating is not None:
            self._error(
                "invalid_request_error",
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self._generating.id}. Wait until the "
                "response is finished before creating a new one.",
                event_id=event.event_id,
            )
            return
        turn = PeerTurn(
            user_items=tuple(self.record.user_items),
            session_turn_detection=self._session.turn_detection,
        )
        reply = self._config().reply
        text = reply if isinstance(reply, str) else reply(turn)
        response = _Response(self._new_id("resp"), AssistantItem(self._new_id("item"), "", None))
        response.item.response_id = response.id
        response.item.requested_at_s = response.requested_at_s
        self._responses[response.id] = response
        self._generating = response
        with self._changed:
            self.record.assistant_items.append(response.item)
            self._changed.notify_all()
        self._spawn(self._generate(response, text))

    def _response_cancel(self, event: ResponseCancel) -> None:
        response = self._generating
        if response is None or (event.response_id is not None and event.response_id != response.id):
            self._error(
                "invalid_request_error",
                "response_cancel_not_active",
                "Cancellation failed: no active response found",
                event_id=event.event_id,
            )
            return
        response.cancelled = True
        self._finish(response)  # generation stops here; what was generated still plays unless cleared

    def _output_clear(self) -> None:
        playing = [response for response in self._playing if not response.playout_over]
        self.voice_track.clear()
        for response in playing:
            response.playout_over = True
        self._playing = []
        if playing:
            self._send(OutputAudioBufferCleared(playing[-1].id, self._event_id()))

    def _truncate(self, event: ConversationItemTruncate) -> None:
        item = next((item for item in self.record.assistant_items if item.id == event.item_id), None)
        if item is None:
            message = f"Conversation item with item_id '{printable(event.item_id[:64])}' not found."
            self._error("invalid_request_error", "item_not_found", message, "item_id", event.event_id)
            return
        if event.content_index != 0:
            message = f"Invalid content_index: {event.content_index}; the item has one audio content part."
            self._error("invalid_request_error", "invalid_value", message, "content_index", event.event_id)
            return
        available_ms = int(item.generated_ms)
        if event.audio_end_ms > available_ms:
            message = f"Audio content of {available_ms}ms is already shorter than {event.audio_end_ms}ms"
            self._error("invalid_request_error", "invalid_value", message, "audio_end_ms", event.event_id)
            return
        with self._changed:
            item.truncated_at_ms = event.audio_end_ms
            item.generated_ms = float(event.audio_end_ms)
            item.transcript = ""  # the real server deletes the transcript; the kept audio is what it knows
            self._changed.notify_all()
        self._send(ConversationItemTruncated(item.id, event.audio_end_ms, 0, self._event_id()))

    def _unknown(self, event: OtherClientEvent) -> None:
        supported = ", ".join(f"'{name}'" for name in KNOWN_CLIENT_EVENTS)
        shown = printable(event.type[:64])
        message = f"Invalid value: '{shown}'. Supported values are: {supported}."
        self._error("invalid_request_error", "invalid_value", message, "type", event.event_id)

    # ------------------------------------------------------------------------------------------ a response

    async def _generate(self, response: _Response, text: str) -> None:
        loop = asyncio.get_running_loop()
        item = response.item
        info = ItemInfo(item.id, "message", "assistant", "in_progress")
        self._send(ResponseCreated(ResponseInfo(response.id, "in_progress"), self._event_id()))
        self._send(ResponseOutputItemAdded(response.id, info, 0, self._event_id()))
        self._send_raw("conversation.item.added", {"previous_item_id": self._last_item_id, "item": _item(info)})
        self._last_item_id = item.id
        part = {"response_id": response.id, "item_id": item.id, "output_index": 0, "content_index": 0}
        self._send_raw("response.content_part.added", {**part, "part": {"type": "audio", "transcript": ""}})
        spoken = await loop.run_in_executor(None, (self._config().voice or ToneVoice()).render, text)
        with self._changed:
            item.spoken = spoken
            self._changed.notify_all()
        delay_s = self._config().first_audio_delay_s
        delay_s += self._config().slow_first_audio_s if self._config().fault == "slow_first_audio" else 0.0
        await asyncio.sleep(max(0.0, response.requested_at_s + delay_s - time.monotonic()))  # rendering included
        if await self._generate_audio(response):
            self._finish(response)

    async def _generate_audio(self, response: _Response) -> bool:
        """Generate the reply's audio and transcript until it is all said or the response is cancelled (then
        `_response_cancel` has finished it); False if the response ended otherwise (cancelled, or the stall)."""
        item, spoken = response.item, response.item.spoken
        assert spoken is not None
        deltas = spoken.deltas()
        step_ms = GENERATION_STEP_S * self._config().generation_speed * 1000
        while item.generated_ms < spoken.duration_ms:
            if not response.generating:
                return False  # cancelled while this step slept
            upto_ms = min(spoken.duration_ms, item.generated_ms + step_ms)
            start, end = (round(ms * RTC_RATE_HZ / 1000) for ms in (item.generated_ms, upto_ms))
            self.voice_track.feed(spoken.audio[start:end], response.id)
            if response not in self._playing:
                self._playing.append(response)
                self.voice_track.start()
            for index in range(len(response.said), len(deltas)):
                if spoken.word_start_ms[index] >= upto_ms:
                    break
                response.said.append(deltas[index])
                self._send(TranscriptDelta(response.id, item.id, deltas[index], 0, 0, self._event_id()))
            with self._changed:
                item.generated_ms = upto_ms
                self._changed.notify_all()
            if self._config().fault == "stall_mid_answer" and upto_ms >= self._config().fault_after_ms:
                self._stalled = True
                return False
            await asyncio.sleep(GENERATION_STEP_S)
        return response.generating

    def _finish(self, response: _Response) -> None:
        """The response's closing events, at once: all generated, or cancelled (what was generated so far)."""
        item = response.item
        response.generating = False
        self._generating = None
        status, reason = ("cancelled", "client_cancelled") if response.cancelled else ("completed", None)
        transcript = "".join(response.said)
        with self._changed:
            item.transcript = transcript if item.truncated_at_ms is None else ""
            item.status = status
            self._changed.notify_all()
        part = {"response_id": response.id, "item_id": item.id, "output_index": 0, "content_index": 0}
        self._send_raw("response.output_audio.done", part)
        self._send(TranscriptDone(response.id, item.id, transcript, 0, 0, self._event_id()))
        self._send_raw("response.content_part.done", {**part, "part": {"type": "audio", "transcript": transcript}})
        done_info = ItemInfo(item.id, "message", "assistant", "completed" if status == "completed" else "incomplete")
        self._send(ResponseOutputItemDone(response.id, done_info, 0, self._event_id()))
        self._send_raw("conversation.item.done", {"previous_item_id": None, "item": _item(done_info)})
        final = ResponseInfo(response.id, status, reason, output_item_ids=(item.id,))
        self._send(ResponseDone(final, self._event_id()))
        self.voice_track.drain(lambda: self._played_out(response))

    def _on_frame(self, pieces: FramePieces) -> None:
        """A frame of the voice went out: count it for its response; the first -> output_audio_buffer.started."""
        for tag, samples in pieces:
            response = self._responses.get(tag) if isinstance(tag, str) else None
            if response is None:
                continue
            with self._changed:
                response.item.sent_ms += samples * 1000 / RTC_RATE_HZ
                self._changed.notify_all()
            if not response.started_playing:
                response.started_playing = True
                with self._changed:
                    response.item.first_frame_at_s = time.monotonic()
                self._send(OutputAudioBufferStarted(response.id, self._event_id()))
            config = self._config()
            dropping = config.fault == "drop_mid_answer" and response.item.sent_ms >= config.fault_after_ms
            if dropping and not self._stalled:
                self._stalled = True  # nothing more is said; the connection goes as soon as close() runs
                self._spawn(self.close("dropped by the fault drop_mid_answer"))

    def _played_out(self, response: _Response) -> None:
        if response.playout_over:
            return
        response.playout_over = True
        if not response.started_playing:
            return  # cancelled before any audio: nothing started, so nothing stops
        if response in self._playing:
            self._playing.remove(response)
        self._send(OutputAudioBufferStopped(response.id, self._event_id()))

    # ------------------------------------------------------------------------------------------ audio in

    async def _read_input(self, track: Any) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            samples = mono_48k(frame)
            duration_ms = len(samples) * 1000 / RTC_RATE_HZ
            with self._changed:
                if self._session_ready:
                    self.record.input_ms += duration_ms
                else:
                    self.record.audio_before_session_ms += duration_ms
                self._changed.notify_all()
            if self._session_ready:
                self._input.append(samples)
                self._input_ms += duration_ms

    # ------------------------------------------------------------------------------------------ events out

    def _send(self, event: ServerEvent) -> None:
        if self._stalled or self._closed or self.channel is None or self.channel.readyState != "open":
            return
        text = dumps(event)
        with self._changed:
            self.record.sent.append(event)
            self.record.last_sent_at_s = time.monotonic()
            self._changed.notify_all()
        self.channel.send(text)

    def _send_raw(self, kind: str, data: dict[str, Any]) -> None:
        self._send(OtherServerEvent(kind, {"event_id": self._event_id(), **data}))

    def _error(self, kind: str, code: str, message: str, param: str | None = None, event_id: str | None = None) -> None:
        self._send(ErrorEvent(ErrorInfo(kind, message, code, param, event_id), self._event_id()))

    def _event_id(self) -> str:
        return self._new_id("event")

    def _new_id(self, kind: str) -> str:
        return f"{kind}_{self.record.number:02d}{next(self._ids):05d}"


def _item(info: ItemInfo) -> dict[str, Any]:
    return {"id": info.id, "object": "realtime.item", "type": "message", "role": "assistant", "status": info.status}
