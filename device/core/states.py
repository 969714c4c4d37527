"""States: nouns that carry their data. No behaviour hides in booleans; a phase is a state of its own.

`Spine` is the whole value the machine steps: the current state plus the context that outlives states
(conversation memory, id counters, cut replies waiting for their heard-text report, pending alarms).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, assert_never, get_args

from device.core.memory import Message, SpokenChunk


@dataclass(frozen=True)
class BargeInRule:
    """Which signals may interrupt one state, and how sure each must be (a row of the barge-in matrix)."""

    wake: bool
    """The wake word interrupts: cancel the turn and listen for a new request."""
    speech: bool
    """User speech interrupts: while audio plays, pause on the first hint and cancel once speech is confirmed
    (resume if it is not); where nothing plays, cancel once speech is confirmed."""
    wake_threshold: float = 0.5
    """The wake word score needed to interrupt this state (hearing reports scores above its own threshold)."""
    speech_probability: float = 0.5
    """The voice probability a hint needs to pause this state's playback."""


@dataclass(frozen=True)
class BargeInMatrix:
    """The barge-in legality matrix: one row per interruptible state (`Paused` follows `speaking`).

    The stop phrase is not a column: it is what an interrupting utterance says ("stop", "never mind"), so it
    reaches the machine through whichever of the two signals a row allows, and then ends the exchange.
    """

    transcribing: BargeInRule = BargeInRule(wake=True, speech=False)
    thinking: BargeInRule = BargeInRule(wake=True, speech=False)
    # A hint is one 32 ms chunk of voice; over playback it must be a clear one (measured on the echo suite:
    # first chunks of real talk-overs scored 0.87-0.97 on the cleaned mic, residual echo at most 0.51).
    speaking: BargeInRule = BargeInRule(wake=True, speech=True, speech_probability=0.7)
    announcing: BargeInRule = BargeInRule(wake=True, speech=True, speech_probability=0.7)


DEFAULT_STOP_PHRASES = ("stop", "cancel", "never mind", "nevermind", "be quiet", "quiet", "shut up", "enough")


@dataclass(frozen=True, kw_only=True)
class CoreConfig:
    """The decision parameters of the machine, in samples at the device rate.

    Built only from the settings: `device.config.core_config()` converts the TOML (where each setting is
    described, once) to this; tests take `core_config(Config())` and override fields with `dataclasses.replace`.
    No field has a default here, so none can drift from the TOML's.
    """

    rate_hz: int
    """`device.rates.SPINE_RATE_HZ`: the rate every sample count here is in (no TOML setting)."""
    listen_timeout_samples: int
    """`[listen] timeout_s`: after the wake word, how long to wait for speech."""
    max_utterance_samples: int
    """`[listen] max_utterance_s`: a longer utterance is cut and transcribed as it is."""
    min_utterance_samples: int
    """`[listen] min_utterance_s`: shorter speech (a cough, a click) is no utterance."""
    preroll_samples: int
    """`[listen] preroll_s`: audio before the detected onset that is transcribed too."""
    barge_in: BargeInMatrix
    """`[barge_in] transcribing`, `thinking`, `speaking`, `announcing`: each over its `BargeInMatrix` default."""
    confirm_samples: int
    """`[barge_in] confirm_ms`: how long a paused playback waits for the hint to be confirmed."""
    follow_up_samples: int
    """`[listen] follow_up_s`: the follow-up window after a reply was heard to its end (0: off)."""
    tts_lookahead_samples: int
    """`[tts] lookahead_s`: synthesise only while less than this much synthesised audio waits to play."""
    tts_in_flight: int
    """`[tts] in_flight`: at most this many sentences are being synthesised at once."""
    early_asr: bool
    """`[asr] early_pause_s` > 0: transcribe at the user's pause (`SpeechPaused`), not only at the endpoint."""
    first_clause_min_words: int
    """`[tts] first_clause_min_words`: a first clause this long goes to speech before its sentence ends."""
    stop_phrases: tuple[str, ...]
    """`[barge_in] stop_phrases`: an utterance that says only these ends the exchange unanswered."""
    reopen_first_samples: int
    """`[audio] reopen_first_s`: the back-off before the first attempt to reopen a lost sound card."""
    reopen_max_samples: int
    """`[audio] reopen_max_s`: the longest back-off between two attempts to reopen it."""
    earcons: bool
    """`[earcons] enabled`: chime on the wake word, on a listening window closing unused, on (un)mute."""
    startup_sound: bool
    """`[earcons] startup`: play the start-up sound on `Started` (independent of `earcons`)."""
    wake_phrase: str
    """`[wake] model` (or `custom_model_path`'s name), as words: stripped from a transcript's start."""
    echo_tail_samples: int
    """`[barge_in] echo_tail_s`: how long the assistant's echo may ring after its voice stopped."""
    own_words_window_words: int
    """`[barge_in] own_words_window_words`: how many last played words a transcript is compared with."""
    own_words_min_fraction: float
    """`[barge_in] own_words_min_fraction`: the share of a transcript's words among them that makes it own."""
    own_one_word_tail_words: int
    """`[barge_in] own_one_word_tail_words`: a one-word transcript must be among this many last words."""
    short_interruption_max_words: int
    """`[barge_in] short_interruption_max_words`: a talk-over this short that is no stop phrase is a stop."""
    short_interruption_max_samples: int
    """`[barge_in] short_interruption_max_s`: a talk-over whose speech was this short is a stop, whatever its words."""
    breaker_self_heard: int
    """`[barge_in] breaker_self_heard`: hearing itself this often within the window trips the breaker (0: off)."""
    breaker_window_samples: int
    """`[barge_in] breaker_window_s`: how far back self-hearings count towards the breaker."""
    breaker_hold_samples: int
    """`[barge_in] breaker_hold_s`: a tripped breaker restores voice barge-in after this long at the latest."""
    alarm_ring_gap_samples: int
    """`[listen] alarm_ring_gap_s`: the gap between two sayings of a ringing timer's line."""
    alarm_ring_max_samples: int
    """`[listen] alarm_ring_max_s`: no saying of a ringing timer's line starts this long after it began."""
    memory_messages: int
    """`[reply] memory_turns`, twice: the most messages memory keeps (whole exchanges, the oldest go first)."""
    asr_timeout_samples: int
    """`[asr] timeout_s`: with no transcript this long after the endpoint, the turn ends with an apology."""
    tts_timeout_samples: int
    """`[tts] timeout_s`: with a sentence asked of synthesis and none delivered this long, the answer ends."""

    @staticmethod
    def from_json(value: dict[str, Any]) -> CoreConfig:
        """The inverse of `dataclasses.asdict` (the event log's header)."""
        value = dict(value)
        matrix = BargeInMatrix(**{name: BargeInRule(**row) for name, row in value.pop("barge_in").items()})
        phrases = tuple(value.pop("stop_phrases"))
        return CoreConfig(**value, barge_in=matrix, stop_phrases=phrases)


@dataclass(frozen=True)
class Reply:
    """A reply as it streams in and is spoken: the text so far, what went to speech, what came back."""

    prompt: str
    text: str = ""
    sentences_cut_at: int = 0
    """Offset in `text` up to which complete sentences were sent to speech synthesis."""
    requested: int = 0
    """Sentences sent to speech synthesis (their seq numbers are 0..requested-1)."""
    waiting: tuple[str, ...] = ()
    """Complete sentences held back until the speaker needs them (the synthesis lookahead is full)."""
    chunks: tuple[SpokenChunk, ...] = ()
    """Synthesised sentences received, in seq order, all queued for playback."""
    stream: Literal["open", "closed"] = "open"


@dataclass(frozen=True)
class Idle:
    """Waiting for the wake word."""


@dataclass(frozen=True)
class Listening:
    """The wake word was heard; waiting for the user to start speaking."""

    turn: int
    opened_at_sample: int
    follow_up: bool = False
    """Opened after a reply rather than by the wake word: it closes silently (no timeout chime)."""
    addressed: bool = False
    """Opened by the wake word (or kept open after one): the user called, so what they say next is a request
    whatever its length. A window reopened after a talk-over too short to hear is not."""


@dataclass(frozen=True)
class Hearing:
    """The user is speaking since `onset_sample`; the audio to transcribe starts at `from_sample` (pre-roll)."""

    turn: int
    onset_sample: int
    from_sample: int
    follow_up: bool = False
    """Heard in a follow-up window: a too-short utterance reopens that window, not a wake-word one."""
    early_to_sample: int | None = None
    """The user paused at this sample and transcription of the audio up to it started (None: not yet)."""
    early_text: str | None = None
    """That transcription's text, once it is back: the endpoint then needs no transcription of its own."""
    addressed: bool = False
    """It follows the wake word (`Listening.addressed`): never taken as a stop for its shortness alone."""


@dataclass(frozen=True)
class Transcribing:
    """The utterance from `onset_sample` up to `to_sample` is being turned into text."""

    turn: int
    to_sample: int
    onset_sample: int
    """Where the utterance began: the guard against answering itself asks whether the assistant's voice sounded
    then."""
    addressed: bool = False
    """It follows the wake word (`Hearing.addressed`)."""


@dataclass(frozen=True)
class Thinking:
    """The reply is streaming in; no audio of it has been synthesised yet."""

    turn: int
    reply: Reply
    held: bool = False
    """The reply is not asked for yet: the request (typed text) cut an answer this instant, and what was heard of
    that answer is known only when the cut is reported (`PlaybackStopped`, a period later). It must come before
    the request in memory and in the history the reply is asked with, so the request waits for it."""


@dataclass(frozen=True)
class Speaking:
    """The reply plays under `epoch` while the rest may still stream in and be synthesised."""

    turn: int
    epoch: int
    reply: Reply
    playing_since_sample: int = 0
    """When the epoch's first sample would have played if it had never paused: `now - playing_since_sample`
    estimates the play position (exact heard text comes from the gate's count, this only paces synthesis)."""


@dataclass(frozen=True)
class Paused:
    """Playback of `inner` is paused: a hint of user speech at `hint_onset_sample` awaits confirmation.

    Confirmed speech cancels the turn; otherwise the `confirm` timer resumes `inner` exactly where it paused.
    Work of the turn goes on meanwhile (text streams in, sentences are synthesised and queued).
    """

    inner: Speaking | Announcing
    hint_onset_sample: int
    paused_at_sample: int = 0

    @property
    def turn(self) -> int:
        return self.inner.turn

    @property
    def epoch(self) -> int:
        return self.inner.epoch


@dataclass(frozen=True)
class Announcing:
    """A fixed line plays under `epoch`: a timer that rang, or an apology for a failed turn (neither is part of
    the conversation memory)."""

    turn: int
    epoch: int
    text: str
    voiced: bool = False
    """Its audio came back from synthesis (until then the synthesis deadline, `Timer("tts")`, is armed)."""


@dataclass(frozen=True)
class Ringing:
    """A timer is done and rings: between two sayings of its line (`Context.ring`), waiting out the gap.

    Speech here is heard (a "stop" needs no wake word); the `ring` timer says the line again."""


@dataclass(frozen=True)
class Muted:
    """The microphone is off for privacy: nothing is heard or kept. Alarms that ring wait for the unmute."""


@dataclass(frozen=True)
class Degraded:
    """The sound card is gone; reopening it is attempt number `attempt`, with a growing back-off.

    `then` is where a restored card leads: a muted assistant stays muted through a lost sound card."""

    reason: str
    attempt: int
    then: Literal["idle", "muted"] = "idle"


@dataclass(frozen=True)
class Stopping:
    """The daemon is shutting down; everything was cancelled and nothing new starts."""


State = (
    Idle
    | Listening
    | Hearing
    | Transcribing
    | Thinking
    | Speaking
    | Paused
    | Announcing
    | Ringing
    | Muted
    | Degraded
    | Stopping
)

STATE_TYPES: tuple[type[State], ...] = get_args(State)


@dataclass(frozen=True)
class CutReply:
    """A reply whose playback was cut; its heard text is committed when the epoch reports it stopped."""

    turn: int
    epoch: int
    chunks: tuple[SpokenChunk, ...]
    full_text: str


@dataclass(frozen=True)
class Alarm:
    """A user timer: armed, or rung while the assistant was busy and waiting to be announced."""

    alarm: int
    label: str


@dataclass(frozen=True)
class Ring:
    """A timer that is done, ringing since `started_at_sample`: its line repeats until the user stops it (the
    wake word, a stop phrase, a request) or `alarm_ring_max_samples` pass. Speech that turns out to be nothing
    (an empty transcript, the assistant's own echo) does not stop it."""

    alarm: Alarm
    started_at_sample: int


@dataclass(frozen=True)
class OwnVoice:
    """What the guard against answering itself knows: what the assistant's voice said and when it sounded.

    Only speech counts (replies and announcements), never an earcon: a chime says no words."""

    words: tuple[str, ...] = ()
    """The last words the speaker played (oldest first; at most `own_words_window_words`)."""
    sounding: tuple[int, ...] = ()
    """Epochs of speech opened and not yet reported drained or stopped: the voice sounds now."""
    ended_at_sample: int | None = None
    """When the voice last fell silent (a drained or stopped epoch); None: it never sounded."""
    self_heard_at: tuple[int, ...] = ()
    """When an utterance turned out to be the assistant's own voice, within `breaker_window_samples`."""
    suspended_since_sample: int | None = None
    """The breaker tripped then: voice barge-in is suspended (only the wake word interrupts). None: armed."""
    trips: int = 0
    """Breaker trips so far: the `breaker` timer of trip n has ref n, so a stale hold timer is recognised."""


@dataclass(frozen=True)
class Context:
    """What outlives a single state."""

    config: CoreConfig
    next_turn: int = 1
    next_epoch: int = 1
    next_alarm: int = 1
    memory: tuple[Message, ...] = ()
    cut_replies: tuple[CutReply, ...] = ()
    alarms_armed: tuple[Alarm, ...] = ()
    alarms_due: tuple[Alarm, ...] = ()
    earcon_epoch: int = 0
    """The epoch of the latest earcon (0: none yet), so its drain report is recognised in the log."""
    startup_epoch: int = 0
    """The start-up sound's epoch while it plays (0: not playing): only a stop cuts it."""
    own_voice: OwnVoice = field(default_factory=OwnVoice)
    ring: Ring | None = None
    """The timer ringing now, if any (its line plays in `Announcing`, its gaps are `Ringing`)."""


@dataclass(frozen=True)
class Spine:
    """The whole value the machine steps."""

    state: State
    context: Context


def initial(config: CoreConfig) -> Spine:
    return Spine(Idle(), Context(config=config))


def current_turn(state: State) -> int | None:
    """The turn whose work is running in `state`, if any."""
    match state:
        case Idle() | Ringing() | Muted() | Degraded() | Stopping():
            return None
        case Listening() | Hearing() | Transcribing() | Thinking() | Speaking() | Paused() | Announcing():
            return state.turn
        case _:
            assert_never(state)
