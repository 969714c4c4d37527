"""Events: past-tense facts posted to the spine's inbox by the organs (hearing, workers, playback, timers).

An event never carries audio: audio travels as a separate payload keyed by (turn, seq), like wyoming's
events. Every result of work carries the turn it belongs to, so a result of a turn that is no longer current
can be dropped as data (invariant 2). Times are sample indices at the device rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

JobKind = Literal["asr", "reply", "tts"]
TimerKind = Literal["listen", "utterance", "alarm", "reopen", "confirm", "lookahead", "ring", "breaker", "asr", "tts"]


@dataclass(frozen=True)
class WakeDetected:
    """The wake word model scored above its threshold at `at_sample`.

    `in_own_speech`: hearing also found the wake word in what the speaker played just before (the reply's own
    text says it), so this detection is aligned with the assistant's voice rather than the user's.
    """

    model: str
    score: float
    at_sample: int
    in_own_speech: bool = False


@dataclass(frozen=True)
class WakeHeardFaintly:
    """The wake word model scored at least `[wake] faint_threshold` but below its threshold at `at_sample`,
    within an utterance under way: the utterance may well begin with a wake word said over the assistant's echo,
    which the model scores low and whisper writes as other words ("Change our vist, what time is it?").
    `words_from_sample`: the start of the last pause before `at_sample`, where the words after the wake word may
    begin (the score peaks late). Reported each time the score rises within the utterance; only an utterance
    being heard acts on it (rule 10 in device/core/machine.py)."""

    model: str
    score: float
    at_sample: int
    words_from_sample: int


@dataclass(frozen=True)
class VoiceHint:
    """The first reliable hint of voice since `onset_sample`, on the echo-cancelled mic; `probability` is the
    highest voice probability of the hint. Cheap and early (tens of milliseconds), so it may be wrong: the
    spine pauses playback on it and waits for `SpeechStarted` to confirm."""

    onset_sample: int
    probability: float


@dataclass(frozen=True)
class SpeechStarted:
    """Voice activity began; `onset_sample` is where the first speech chunk started."""

    onset_sample: int


@dataclass(frozen=True)
class EchoCancellerChanged:
    """The echo canceller converged (it removes enough echo for speech to interrupt playback) or lost it."""

    converged: bool
    erle_db: float


VoiceGate = Literal["none", "reference", "reference+canceller", "exact-reference", "exact-reference+canceller"]


@dataclass(frozen=True)
class VoiceGateChanged:
    """How hearing tells the user's voice from the assistant's echo while it plays changed (a fact for the log
    and the timeline): `none`, the speaker-to-mic coupling is not measured yet, so voice cannot interrupt
    playback (the wake word can); `reference`, the played reference judges and the voice detector hears the raw
    mic; `reference+canceller`, the reference judges and the voice detector hears the echo-cancelled mic; with
    `exact-`, the reference judges at exactly the echo's delay (a stable, dry path: device/runtime/echo_reference.py),
    which finds a user a few dB under the echo."""

    detector: VoiceGate


EchoDelayCause = Literal["found", "moved", "xrun"]


@dataclass(frozen=True)
class EchoDelayChanged:
    """What hearing knows of the echo's delay after the played reference changed (a fact for the log and the
    timeline): `found`, measured on the played audio (first after start, or again after an xrun); `moved`, the
    echo moved with no xrun reported (an underrun inside the sound server, clock drift) and the new delay was
    measured; `xrun`, the sound card reported an xrun, so the delay is unknown (`delay_ms` None) until found
    again, and voice over playback is not believed meanwhile (the voice gate reads `none`)."""

    delay_ms: float | None
    cause: EchoDelayCause


@dataclass(frozen=True)
class SpeechEnded:
    """Voice activity ended (enough trailing silence); `end_sample` is where the speech stopped."""

    end_sample: int


@dataclass(frozen=True)
class SpeechPaused:
    """The user has been quiet for a short while (less than it takes to end an utterance) since `end_sample`.

    The utterance may be over: transcription can start now, and the endpoint only has to confirm it."""

    end_sample: int


@dataclass(frozen=True)
class TranscriptReady:
    """Speech to text finished for a turn's audio up to `to_sample` (an utterance, or its part up to a pause)."""

    turn: int
    text: str
    to_sample: int


@dataclass(frozen=True)
class ReplyDelta:
    """The reply backend streamed more text for a turn."""

    turn: int
    text: str


@dataclass(frozen=True)
class ReplyFinished:
    """The reply backend closed its stream for a turn: no more text will come."""

    turn: int


@dataclass(frozen=True)
class AlarmRequested:
    """The reply asked for a timer that rings `seconds` from now (the local responder's timer skill)."""

    turn: int
    seconds: int
    label: str


@dataclass(frozen=True)
class TtsChunkReady:
    """Speech for one sentence of a turn's reply is synthesised; its audio waits under (turn, seq).

    `word_end_samples[i]` is the sample, counted from the chunk's start, by which word i of `text` (split on
    white space) has been fully spoken. It is how heard text is derived from the played-sample cursor.
    """

    turn: int
    seq: int
    text: str
    samples: int
    word_end_samples: tuple[int, ...]


@dataclass(frozen=True)
class RemoteAudioReady:
    """The reply backend speaks for itself (a realtime model's own voice, `[reply] backend = "realtime"`): a
    stretch of the turn's spoken reply arrived; its audio waits under (turn, seq) as synthesised speech does.

    It is both halves of the Piper path at once: the text (`ReplyDelta`) and its audio (`TtsChunkReady`). `text`
    holds the words whose end falls in this stretch, `word_end_samples[i]` where word i ends, counted from the
    chunk's start (estimated on the device: the remote side gives no word timing), so heard text is derived from
    the played-sample cursor exactly as for Piper. A stretch may hold no words, or no samples (the last one)."""

    turn: int
    seq: int
    text: str
    samples: int
    word_end_samples: tuple[int, ...]


@dataclass(frozen=True)
class RemoteLinkChanged:
    """The realtime backend's connection came up or went down (`up`). `cause`: "connected", a failed connect's
    step ("unreachable", "timeout", "auth", "rejected", "server", "protocol", "media" for ICE/DTLS, "session"),
    or a call that ended ("dropped", "stalled"); `detail` says more (never the key). A fact for the log, the
    monitor and the metrics: the turn it hurts learns of it through its reply job (`EngineFailed`, or the local
    responder as fallback)."""

    up: bool
    cause: str
    detail: str


@dataclass(frozen=True)
class PlaybackDrained:
    """A finished playback epoch has played out completely."""

    epoch: int
    played_samples: int


@dataclass(frozen=True)
class PlaybackStopped:
    """A cut playback epoch has faded out; `played_samples` were handed to the device, fade included."""

    epoch: int
    played_samples: int


@dataclass(frozen=True)
class TimerFired:
    """A timer armed by `StartTimer(kind, ref, ...)` reached its deadline."""

    kind: TimerKind
    ref: int


@dataclass(frozen=True)
class JobCancelled:
    """A worker acknowledged that the job of `kind` for `turn` stopped after a cancel."""

    turn: int
    job: JobKind


@dataclass(frozen=True)
class JobLeaked:
    """A cancelled job did not acknowledge within the deadline: its worker was abandoned and replaced, and
    nothing it computes is posted any more (invariant 6: the spine never waits for a worker)."""

    turn: int
    job: JobKind
    waited_ms: float


@dataclass(frozen=True)
class EngineFailed:
    """A job failed (model error, backend error); the turn cannot go on."""

    turn: int
    job: JobKind
    reason: str


@dataclass(frozen=True)
class AudioDeviceLost:
    """The sound card stream failed or could not be (re)opened: a vanished USB device, a dead server."""

    reason: str


@dataclass(frozen=True)
class AudioDeviceRestored:
    """The sound card stream is open and running again."""


@dataclass(frozen=True)
class AudioXrun:
    """The sound card could not keep up (a fact for the log, the timeline and the metrics; hearing acts on it
    itself, device/runtime/hearing.py `echo_path_moved`): since the last report the speaker ran dry `underflows`
    times and the mic's buffer overflowed `overflows` times. Counted by the callback from PortAudio's status flags
    (where an ALSA "underrun occurred" on stderr ends up) and reported on the FSM thread's next round, so a
    self-interruption or a missed talk-over can be read next to its cause in the log."""

    underflows: int
    overflows: int


@dataclass(frozen=True)
class AudioLatencyRaised:
    """The stream lost mic audio or ran dry too often and was reopened one latency step up to keep up (a fact for
    the log, the timeline and the metrics; device/audio/stream.py `LATENCY_STEPS_S`): `output_latency_ms` is the
    new stream's, as PortAudio reports it; `cause` says what was lost."""

    output_latency_ms: float
    cause: str


@dataclass(frozen=True)
class AudioLatencyLowered:
    """A stream raised a latency step kept up for `quiet_s` (device/audio/stream.py `QUIET_BEFORE_STEP_DOWN_NS`)
    and was reopened, while Spine was idle, one step back down: `output_latency_ms` is the new stream's. A fact for
    the log, the timeline and the metrics, as `AudioLatencyRaised` is."""

    output_latency_ms: float
    quiet_s: float


@dataclass(frozen=True)
class MuteChanged:
    """The user muted or unmuted the microphone (privacy), by a control outside the mic: a signal, the
    monitor page. Muting cannot be undone by voice: a muted Spine does not listen."""

    muted: bool
    source: str


@dataclass(frozen=True)
class BargeInRequested:
    """Someone asked, by a control outside the mic (the monitor page's admin), to interrupt the assistant and be
    heard: the turn is cancelled and listening opens, as for an accepted wake word. The barge-in matrix does
    not apply: it weighs signals heard through the mic, and this one was asked for in so many words."""

    source: str


@dataclass(frozen=True)
class TextTyped:
    """Someone typed a request (the monitor page's admin): the machine answers it as if it were the transcript of
    an utterance - stop phrases still stop, but the guard against the assistant's own voice does not apply (the
    text was typed, not heard). In a busy state it interrupts as the wake word would, if the barge-in matrix
    lets the wake word interrupt that state. The text was checked at the edge (non-empty, bounded, printable)."""

    text: str
    source: str


@dataclass(frozen=True)
class Started:
    """The loop began: posted once by the shell, before any other event (the start-up sound plays on it)."""


@dataclass(frozen=True)
class StopRequested:
    """The daemon is asked to stop (signal, end of a scene)."""

    reason: str


Event = (
    WakeDetected
    | WakeHeardFaintly
    | VoiceHint
    | EchoCancellerChanged
    | VoiceGateChanged
    | EchoDelayChanged
    | SpeechStarted
    | SpeechEnded
    | SpeechPaused
    | TranscriptReady
    | ReplyDelta
    | ReplyFinished
    | AlarmRequested
    | TtsChunkReady
    | RemoteAudioReady
    | RemoteLinkChanged
    | PlaybackDrained
    | PlaybackStopped
    | TimerFired
    | JobCancelled
    | JobLeaked
    | EngineFailed
    | AudioDeviceLost
    | AudioDeviceRestored
    | AudioXrun
    | AudioLatencyRaised
    | AudioLatencyLowered
    | MuteChanged
    | BargeInRequested
    | TextTyped
    | Started
    | StopRequested
)

EVENT_TYPES: tuple[type[Event], ...] = get_args(Event)

TurnResult = (
    TranscriptReady | ReplyDelta | ReplyFinished | AlarmRequested | TtsChunkReady | RemoteAudioReady | EngineFailed
)
"""What a turn's work posts back: each carries the turn it belongs to, so a late one is recognised."""
