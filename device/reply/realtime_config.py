"""What the realtime client needs to know (`RealtimeConfig`) and what it tells its caller besides the server's
events: the errors it raises, the notices it posts, the remote audio it delivers, the connect times.

The API key is never printed: it is kept out of `repr(RealtimeConfig)`, every message built from what a server
said passes through `scrub`, and error bodies of 401/403 answers are reduced to their code (OpenAI's quote the
key, masked but partly readable).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from device.config import base_url_problem
from device.reply.realtime_events import ErrorInfo

Audio = npt.NDArray[np.int16]

ConnectFailure = Literal["unreachable", "timeout", "auth", "rejected", "server", "protocol", "media", "session"]
"""Why a call could not be made: the server could not be reached, did not answer in time, refused the key,
refused the call (404, 429, another 4xx), failed (5xx), answered something that is not an SDP answer or an
unusable one, the WebRTC connection did not come up, or the session was not confirmed."""

RTC_RATE_HZ = 48_000
"""WebRTC's audio rate (Opus): the rate of every frame on the call's tracks and of the server's audio timeline."""

DEFAULT_TAIL_FRAMES = 5
"""Silence after a burst of WebRTC audio, in 20 ms frames: one more than aiortc's jitter-buffer prefetch (4
frames), enough to push a burst's last frame out of the receiver (device/reply/realtime_audio.py)."""

TIMEOUT_NAMES = ("connect_timeout_s", "media_timeout_s", "session_timeout_s", "stall_timeout_s")


class RealtimeError(Exception):
    """The realtime call failed; the message says what happened and what to check (never the key)."""


class RealtimeConnectError(RealtimeError):
    """A call could not be made; `failure` says which step failed."""

    def __init__(self, failure: ConnectFailure | str, message: str) -> None:
        super().__init__(message)
        self.failure = failure


class RealtimeClosed(RealtimeError):
    """An operation on a call that has ended (the `CallEnded` notice said why) or was never made."""


@dataclass(frozen=True)
class RealtimeConfig:
    """How to reach an OpenAI-Realtime-compatible server over WebRTC and what to ask it."""

    base_url: str
    """The API root, e.g. "https://api.openai.com/v1"; the client POSTs its offer to `{base_url}/realtime/calls`."""
    model: str
    """The realtime model, sent as `?model=` with the offer, e.g. "gpt-realtime"."""
    api_key: str | None = field(default=None, repr=False)
    """Sent as `Authorization: Bearer ...` with the offer. Never printed: excluded from repr, scrubbed from text."""
    api_key_env: str | None = "OPENAI_API_KEY"
    """Where the key came from, only to name it in errors (a 401 says where to look)."""
    instructions: str | None = None
    """The session's system instructions; None keeps the server's."""
    voice: str | None = None
    """The model's voice (e.g. "marin"); None keeps the server's."""
    connect_timeout_s: float = 10.0
    """Max time for the offer's HTTP round trip (DNS, TCP, TLS, the server's answer)."""
    media_timeout_s: float = 10.0
    """Max time from the answer to an open events channel (ICE, DTLS, SCTP)."""
    session_timeout_s: float = 5.0
    """Max time from `session.update` to `session.updated`."""
    stall_timeout_s: float = 8.0
    """While a response is under way (asked for, not yet `response.done`): max time without any event before
    the call counts as stalled and is hung up."""
    tail_frames: int = DEFAULT_TAIL_FRAMES
    """20 ms frames of silence after each burst of microphone audio (device/reply/realtime_audio.py says why)."""

    @property
    def endpoint(self) -> str:
        return self.base_url.rstrip("/") + "/realtime/calls"

    def validate(self) -> str | None:
        problem = base_url_problem(self.base_url, "[reply] base_url")
        if problem is not None:
            return problem
        if not self.model.strip():
            return "[reply] model must name the realtime model, e.g. gpt-realtime"
        for name in TIMEOUT_NAMES:
            if not getattr(self, name) > 0:
                return f"[reply] {name} must be > 0, got {getattr(self, name)}"
        if self.tail_frames < 0:
            return f"the microphone's tail must be >= 0 frames, got {self.tail_frames}"
        if self.api_key is not None and not (self.api_key and all(33 <= ord(char) <= 126 for char in self.api_key)):
            return "the API key contains spaces or control characters; check the key file or environment variable"
        return None


@dataclass(frozen=True)
class ConnectTimes:
    """Where a call's set-up time went, in milliseconds."""

    offer_ms: float
    """Making the offer (aiortc gathers its ICE candidates here)."""
    answer_ms: float
    """The offer's HTTP round trip to the server's answer."""
    media_ms: float
    """The answer to an open events channel: ICE checks, DTLS and SCTP handshakes."""
    session_ms: float
    """`session.update` to `session.updated`."""
    total_ms: float


@dataclass(frozen=True, eq=False)  # eq=False: numpy arrays do not compare as a bool
class RemoteAudio:
    """A chunk of the model's voice, as received."""

    samples: Audio
    """16 kHz mono int16."""
    response_id: str
    item_id: str | None
    """The response's assistant item (the one to truncate), once announced."""
    received_ms: float
    """All of this item's audio received so far, this chunk included, in ms of the server's 48 kHz timeline."""


@dataclass(frozen=True)
class ExpectedRace:
    """The server's error to a cancel, clear or truncate that crossed the response's own end (the response had
    finished, the audio was shorter): harmless, the call goes on."""

    error: ErrorInfo
    sent: str
    """The type of the client event it answered, e.g. "response.cancel"."""


@dataclass(frozen=True)
class CallEnded:
    """The call is over: the server dropped it, it stalled, or the device hung up. Reconnect to go on."""

    reason: Literal["dropped", "stalled", "closed"]
    message: str


@dataclass(frozen=True)
class MalformedEvent:
    """The server sent a message that is not a valid event; it was ignored."""

    message: str


Notice = ExpectedRace | CallEnded | MalformedEvent


def scrub(text: str, api_key: str | None) -> str:
    """`text` with the key replaced by "***" (a server may echo it back)."""
    return text.replace(api_key, "***") if api_key else text
