"""What the test peer (device/testing/realtime_peer.py) is told to do (`PeerConfig`, its faults) and what it
records of each call for tests to assert on (`CallRecord`: every event received and sent, the microphone audio,
the items and what truncation left of them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

# Types only: `spine` imports this module for its parser, and numpy would double every command's start-up.
if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from device.reply.realtime_events import ClientEvent, ServerEvent
    from device.testing.realtime_peer_voice import SpokenReply, Voice

    Audio = npt.NDArray[np.int16]

PeerFault = Literal[
    "none", "http_401", "http_500", "ice_unanswered", "drop_mid_answer", "stall_mid_answer", "stall_session",
    "slow_first_audio",
]  # fmt: skip
PEER_FAULTS: tuple[PeerFault, ...] = get_args(PeerFault)
"""What goes wrong:

  | fault             | what the peer does                                                                    |
  |-------------------|---------------------------------------------------------------------------------------|
  | none              | answers as the real server would                                                      |
  | http_401          | refuses every call with 401 and an OpenAI-style `invalid_api_key` body               |
  | http_500          | refuses every call with 500 and an OpenAI-style `server_error` body                  |
  | ice_unanswered    | answers the offer (201, a valid SDP answer), then closes its side before ICE: the     |
  |                   | client's connectivity checks go unanswered and no DTLS or channel ever comes up       |
  | drop_mid_answer   | closes the peer connection once `fault_after_ms` of an answer's audio has been sent  |
  | stall_mid_answer  | once `fault_after_ms` of an answer is generated, sends no event and answers nothing   |
  |                   | more (the connection stays up; the audio generated so far still plays)                |
  | stall_session     | never answers `session.update`                                                        |
  | slow_first_audio  | waits `slow_first_audio_s` more before an answer's first audio                        |
"""

DEFAULT_REPLY = (
    "Sure. Here is the answer from the test peer, spoken one word at a time. Interrupt me whenever you like, "
    "and I will stop right there."
)


@dataclass
class UserItem:
    id: str
    audio: Audio | None
    """The committed microphone audio, 48 kHz mono int16 (None for a text item)."""
    text: str | None


@dataclass
class AssistantItem:
    id: str
    transcript: str
    """The transcript as the server holds it: all of it once generated, "" once truncated (the real server
    deletes an item's transcript when it is truncated)."""
    spoken: SpokenReply | None
    response_id: str = ""
    generated_ms: float = 0.0
    """The item's audio, in ms: generated so far, or where it was truncated."""
    sent_ms: float = 0.0
    """Of it, sent on the voice track."""
    truncated_at_ms: int | None = None
    status: str = "in_progress"
    requested_at_s: float = 0.0
    """When the peer got the `response.create` (the monotonic clock, as `time.monotonic()` in this process)."""
    first_frame_at_s: float | None = None
    """When the answer's first frame went to the voice track. `first_frame_at_s - requested_at_s` is the peer's own
    part of the time to first audio (the model's latency, `first_audio_delay_s`, and rendering the voice)."""

    @property
    def kept_words(self) -> tuple[str, ...]:
        """The words the item's audio still holds: all generated words, or those wholly before the cut."""
        if self.spoken is None:
            return ()
        return self.spoken.words_within(self.generated_ms)


@dataclass(frozen=True)
class PeerTurn:
    """What the reply function is given: the conversation's user items so far and the session's turn detection."""

    user_items: tuple[UserItem, ...]
    session_turn_detection: str | None


@dataclass(frozen=True)
class PeerConfig:
    """How the peer answers; read at each call and each response, so a test may swap it between them."""

    api_key: str | None = field(default=None, repr=False)
    """When set, calls without `Authorization: Bearer <this>` get 401, as from the real API."""
    reply: str | Callable[[PeerTurn], str] = DEFAULT_REPLY
    voice: Voice | None = None
    """How replies sound; None: `ToneVoice()` (device/testing/realtime_peer_voice.py)."""
    first_audio_delay_s: float = 0.1
    """From `response.create` to the first audio generated (the model's own latency)."""
    generation_speed: float = 4.0
    """How much faster than real time the reply is generated (a real server's is several times)."""
    fault: PeerFault = "none"
    fault_after_ms: float = 800.0
    """For drop_mid_answer (audio sent) and stall_mid_answer (audio generated): how far into the answer."""
    slow_first_audio_s: float = 3.0


@dataclass
class CallRecord:
    """Everything about one call. Changed on the peer's loop under the peer's lock; read it with `wait`."""

    number: int
    model: str | None
    received: list[ClientEvent] = field(default_factory=list)
    sent: list[ServerEvent] = field(default_factory=list)
    last_sent_at_s: float | None = None
    """When the last event was sent (the monotonic clock, as `time.monotonic()` in this process)."""
    malformed: list[str] = field(default_factory=list)
    """Messages from the client that were not valid events, and why."""
    turn_detection: str | None = "server_vad"
    """The session's turn detection after the client's last `session.update` ("off" when the client set null)."""
    audio_before_session_ms: float = 0.0
    """Microphone audio that arrived before `session.updated` was sent (dropped, as the real server would not
    have been configured yet)."""
    input_ms: float = 0.0
    """Microphone audio received after `session.updated`."""
    user_items: list[UserItem] = field(default_factory=list)
    assistant_items: list[AssistantItem] = field(default_factory=list)
    ended: str | None = None

    def received_types(self) -> list[str]:
        return [event.type for event in self.received]

    def sent_types(self) -> list[str]:
        return [event.type for event in self.sent]
