"""The daemon's settings: one TOML file into frozen dataclasses, one home per setting.

Every setting is defined here once: its default, a unit in its name (`_s`, `_ms`, `_hz`, `_db`, `_dbfs`,
`_words`), a docstring saying what it does, and its range (`within(low, high)`, enforced by the loader at the
key's line; what depends on another setting is checked by a `validate`). Every field has a default, so an empty
file (or no `--config` at all) is a working configuration. `spine config --default` prints all of it as a
commented TOML file (device/config_cli.py).

Times are in seconds or milliseconds here and become samples at `SPINE_RATE_HZ` once, where they are handed
over: `core_config()` below for the pure core, `hearing_config()` in device/runtime/hearing.py for hearing.

This module is a leaf: it imports device.core (the types of the decision parameters), device.rates and
device.tomlfile, and nothing that reads the settings (runtime, engines, audio, reply backends, simulation).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from device.core.states import DEFAULT_STOP_PHRASES, BargeInMatrix, BargeInRule, CoreConfig
from device.rates import SPINE_RATE_HZ
from device.tomlfile import example, load_dataclass, within


@dataclass(frozen=True)
class AudioConfig:
    period_ms: int = field(default=10, metadata=within(5, 40))
    """One audio period, in milliseconds: the sound card's callback and the spine's audio step run once per
    period. A multiple of 10 with the echo canceller on (it works in 10 ms frames)."""
    fade_ms: float = 4.0
    """Fade-out applied when playback is cut (no click), in milliseconds: 0.5 up to `period_ms` (it must fit in
    one period)."""
    switch_interval_ms: float = field(default=1.0, metadata=within(0.1, 100.0))
    """Python's thread switch interval while running (sys.setswitchinterval), in milliseconds: how long a busy
    Python thread may keep the audio callback waiting for the GIL. 1 ms measured best (`spine bench audio`)."""
    card_rate_hz: int | None = field(default=None, metadata={**within(8000, 192000), **example(48000)})
    """The sound card's sample rate, in Hz. Unset: 16000 (Spine's own rate) when both devices take it, else a
    rate both take; Spine resamples between the card's rate and its own on its own thread, never in the
    callback."""
    input_device: str | None = field(default=None, metadata=example("USB"))
    """Microphone: a device index or part of its name (`spine devices` lists them); unset: the system's."""
    output_device: str | None = field(default=None, metadata=example("USB"))
    """Speaker: a device index or part of its name; unset: the system's."""
    reopen_first_s: float = field(default=1.0, metadata=within(0.1, 60.0))
    """When the sound card goes away (unplugged, the sound server restarted), wait this long, in seconds, before
    the first attempt to reopen it; the wait doubles with each attempt..."""
    reopen_max_s: float = field(default=30.0, metadata=within(0.1, 3600.0))
    """...up to this long, in seconds (at least `reopen_first_s`)."""

    @property
    def device_rate_hz(self) -> int | None:
        """The old name of `card_rate_hz`, still read by device/run.py."""
        return self.card_rate_hz

    def validate(self) -> str | None:
        if not 0.5 <= self.fade_ms <= self.period_ms:
            return f"`fade_ms` must be 0.5..period_ms ({self.period_ms}), got {self.fade_ms}"
        if self.reopen_max_s < self.reopen_first_s:
            return f"`reopen_max_s` must be at least `reopen_first_s` ({self.reopen_first_s}), got {self.reopen_max_s}"
        return None


@dataclass(frozen=True)
class ModelsConfig:
    dir: Path | None = field(default=None, metadata=example("/var/lib/spine/models"))
    """Where `spine models fetch` put the models; unset: $SPINE_MODELS_DIR, else ~/.local/share/spine/models."""


@dataclass(frozen=True)
class WakeConfig:
    model: Literal["hey_jarvis", "alexa", "hey_mycroft", "hey_rhasspy"] = "hey_jarvis"
    """Pretrained openWakeWord head (CC BY-NC-SA 4.0); use `custom_model_path` for your own."""
    custom_model_path: Path | None = field(default=None, metadata=example("/etc/spine/hey_spine_v0.1.onnx"))
    """An openWakeWord ONNX head of your own (e.g. trained with openWakeWord's notebook); overrides `model`. The
    file's name, without a version suffix, is the wake phrase ("hey_spine_v0.1.onnx": "hey spine")."""
    threshold: float = field(default=0.5, metadata=within(0.0, 1.0))
    """The wake word model's score (a probability) at or above which the wake word is detected: higher, fewer
    false wakes and more missed ones. A state's `[barge_in.<state>] wake_threshold` may ask for more."""
    refractory_s: float = field(default=1.0, metadata=within(0.0, 10.0))
    """After a detection, ignore the wake word this long, in seconds (the score stays high for a few frames)."""
    own_speech_window_s: float = field(default=1.0, metadata=within(0.0, 10.0))
    """A detection on the mic up to this long, in seconds, after the wake word was found in what the speaker
    played is the assistant saying it (marked `in_own_speech`): it never wakes or interrupts anything."""

    @property
    def model_name(self) -> str:
        """The wake word model's name: `model`, or the custom file's stem."""
        return self.model if self.custom_model_path is None else self.custom_model_path.stem


@dataclass(frozen=True)
class VadConfig:
    on_threshold: float = field(default=0.5, metadata=within(0.0, 1.0))
    """The voice detector's probability at or above which a 32 ms chunk is voice: a run of such chunks is a hint
    (`hint_s`), then the start of speech (`start_s`)."""
    off_threshold: float = field(default=0.35, metadata=within(0.0, 1.0))
    """Within speech, a chunk below this probability is silence (`end_silence_s` of it end the utterance). At
    most `on_threshold`: between the two, speech goes on but none starts (hysteresis)."""
    start_s: float = field(default=0.2, metadata=within(0.0, 5.0))
    """A run of voice this long, in seconds, starts an utterance."""
    end_silence_s: float = field(default=0.7, metadata=within(0.05, 10.0))
    """Silence this long, in seconds, ends an utterance."""
    hint_s: float = field(default=0.032, metadata=within(0.0, 5.0))
    """A run of voice this long, in seconds, is a hint: while the assistant speaks, it pauses playback until
    speech is confirmed (one 32 ms chunk: enough to pause playback, not to cancel it)."""
    onset_lookback_s: float = field(default=0.5, metadata=within(0.0, 5.0))
    """The wake word is scored a little late: if the user already speaks again when it is detected, the request
    starts after the last pause within this long, in seconds, before the detection (else at the detection)."""
    reset_quiet_s: float = field(default=1.0, metadata=within(0.1, 60.0))
    """After this long without voice, in seconds, the voice detector's recurrent state starts afresh: after many
    seconds of near-silence it answers an onset late (device/runtime/hearing.py says what was measured)."""

    def validate(self) -> str | None:
        if self.off_threshold > self.on_threshold:
            return f"`off_threshold` must be at most `on_threshold` ({self.on_threshold}), got {self.off_threshold}"
        return None


@dataclass(frozen=True)
class AecConfig:
    enabled: bool = True
    """Cancel the speaker's echo from the mic (WebRTC AEC3). Off: voice over playback is still told from the
    assistant's own echo by the played reference (`device/runtime/echo_reference.py`), but the voice detector
    then hears the raw mic, so a user much quieter than the echo is not heard."""
    converge_erle_db: float = field(default=10.0, metadata=within(3.0, 40.0))
    """Speech may interrupt playback once the canceller removes this much echo, in dB (measured, not assumed)."""


@dataclass(frozen=True)
class EarconsConfig:
    enabled: bool = True
    """Chime when the wake word is accepted, when nothing was said after it, and on mute/unmute."""
    level_dbfs: float = field(default=-14.0, metadata=within(-60.0, 0.0))
    """Peak level of the chimes, in dB below full scale (speech peaks near -3 dBFS)."""
    startup: bool = True
    """Play the 1.2 s start-up sound once at start: the echo canceller and the echo model learn the room from
    it, so the user can talk over the first answer from its first syllable. Off: they learn it from the
    first half second or so of the first answer, which cannot be interrupted by voice until then."""


@dataclass(frozen=True)
class ListenConfig:
    timeout_s: float = field(default=8.0, metadata=within(0.5, 120.0))
    """After the wake word, wait this long, in seconds, for speech before going back to idle."""
    max_utterance_s: float = field(default=15.0, metadata=within(1.0, 120.0))
    """An utterance longer than this, in seconds, is cut there and transcribed as it is."""
    min_utterance_s: float = field(default=0.2, metadata=within(0.0, 5.0))
    """Speech shorter than this, in seconds (a cough, a click), is not an utterance: keep listening."""
    preroll_s: float = field(default=0.15, metadata=within(0.0, 2.0))
    """Audio before the detected onset included in the transcription, in seconds (the voice detector lags the
    voice by a chunk)."""
    follow_up_s: float = field(default=5.0, metadata=within(0.0, 60.0))
    """After a reply is heard to its end, listen this long, in seconds, for a follow-up without the wake word
    (0: off)."""
    alarm_ring_gap_s: float = field(default=2.0, metadata=within(0.0, 60.0))
    """A finished timer says its line, waits this long, in seconds, and says it again until it is stopped..."""
    alarm_ring_max_s: float = field(default=60.0, metadata=within(0.0, 3600.0))
    """...for at most this long, in seconds (no new ring starts after it), like a kitchen timer."""


@dataclass(frozen=True)
class BargeInRow:
    """One state's row of the barge-in matrix; a key left out keeps that state's default (shown commented)."""

    wake: bool | None = None
    """The wake word interrupts this state."""
    speech: bool | None = None
    """User speech interrupts this state (over playback: pause on a hint, cancel once confirmed)."""
    wake_threshold: float | None = field(default=None, metadata=within(0.0, 1.0))
    """Wake word score needed to interrupt this state (at least `[wake] threshold`, which hearing applies)."""
    speech_probability: float | None = field(default=None, metadata=within(0.0, 1.0))
    """Voice probability a hint needs to pause this state's playback."""

    @staticmethod
    def of(rule: BargeInRule) -> BargeInRow:
        """A row that says all of `rule` (what `spine config --default` shows for a state's defaults)."""
        return BargeInRow(rule.wake, rule.speech, rule.wake_threshold, rule.speech_probability)

    def over(self, default: BargeInRule) -> BargeInRule:
        return BargeInRule(
            wake=default.wake if self.wake is None else self.wake,
            speech=default.speech if self.speech is None else self.speech,
            wake_threshold=default.wake_threshold if self.wake_threshold is None else self.wake_threshold,
            speech_probability=(
                default.speech_probability if self.speech_probability is None else self.speech_probability
            ),
        )


_MATRIX = BargeInMatrix()


@dataclass(frozen=True)
class BargeInConfig:
    """What may interrupt the assistant, state by state (the defaults are `BargeInMatrix` in the core):

    | state        | wake word | speech |
    |--------------|-----------|--------|
    | transcribing | yes       | no     |
    | thinking     | yes       | no     |
    | speaking     | yes       | yes    |
    | announcing   | yes       | yes    |

    and how the assistant tells the user's voice from its own.
    """

    transcribing: BargeInRow = field(default_factory=BargeInRow, metadata=example(BargeInRow.of(_MATRIX.transcribing)))
    """While the user's request is being transcribed."""
    thinking: BargeInRow = field(default_factory=BargeInRow, metadata=example(BargeInRow.of(_MATRIX.thinking)))
    """While the reply is awaited, before anything plays."""
    speaking: BargeInRow = field(default_factory=BargeInRow, metadata=example(BargeInRow.of(_MATRIX.speaking)))
    """While the reply plays (and while it is paused on a hint)."""
    announcing: BargeInRow = field(default_factory=BargeInRow, metadata=example(BargeInRow.of(_MATRIX.announcing)))
    """While a timer rings or an apology plays."""
    confirm_ms: float = field(default=400.0, metadata=within(50.0, 2000.0))
    """After a hint of voice paused playback, speech must be confirmed within this long, in milliseconds, or
    playback resumes."""
    stop_phrases: tuple[str, ...] = DEFAULT_STOP_PHRASES
    """An interrupting utterance that says only one of these (lower case, no punctuation) ends the exchange."""
    echo_tail_s: float = field(default=0.5, metadata=within(0.0, 5.0))
    """An utterance that began while the assistant spoke, or this long after, in seconds, and repeats its last
    words is its own echo: never answered (a self-interruption)."""
    own_words_window_words: int = field(default=20, metadata=within(1, 200))
    """That guard compares a transcript with this many of the last words the speaker played."""
    own_words_min_fraction: float = field(default=0.6, metadata=within(0.0, 1.0))
    """At least this share of a transcript's words, in order, among those played words make it the assistant's
    own (two of two, two of three, three of four, three of five ...)."""
    own_one_word_tail_words: int = field(default=3, metadata=within(1, 200))
    """A one-word transcript is the assistant's own only if it is one of this many last played words."""
    short_interruption_max_words: int = field(default=2, metadata=within(0, 10))
    """A talk-over of at most this many words (the wake phrase aside) that whisper did not read as a stop phrase
    is still taken as a stop, never answered (a stop said over echo is often misheard). 0: answer them."""
    breaker_self_heard: int = field(default=2, metadata=within(0, 100))
    """This many self-interruptions within `breaker_window_s` suspend voice barge-in (the wake word still
    interrupts) until the echo canceller converges again or `breaker_hold_s` pass; 0: never."""
    breaker_window_s: float = field(default=60.0, metadata=within(1.0, 3600.0))
    """How far back, in seconds, self-interruptions count towards the breaker."""
    breaker_hold_s: float = field(default=60.0, metadata=within(1.0, 3600.0))
    """A tripped breaker restores voice barge-in when the canceller next converges, or after this long, in
    seconds, at the latest."""
    reference_window_s: float = field(default=0.5, metadata=within(0.01, 5.0))
    """How long, in seconds, a played sample can still be heard as echo (delay plus reverberation): while
    anything was played this recently, voice on the mic counts only where the played reference cannot explain
    it (device/runtime/echo_reference.py)."""
    user_hold_s: float = field(default=0.3, metadata=within(0.0, 5.0))
    """Once the played reference found someone else's voice, voice stays believed this long, in seconds, after
    the last chunk that proved it, so a syllable the echo happens to mask does not break the run of voice that
    confirms a barge-in."""

    def matrix(self) -> BargeInMatrix:
        defaults = BargeInMatrix()
        return BargeInMatrix(
            transcribing=self.transcribing.over(defaults.transcribing),
            thinking=self.thinking.over(defaults.thinking),
            speaking=self.speaking.over(defaults.speaking),
            announcing=self.announcing.over(defaults.announcing),
        )


@dataclass(frozen=True)
class AsrConfig:
    threads: int | None = field(default=None, metadata={**within(1, 256), **example(1)})
    """whisper.cpp threads; unset: one fewer than the cores, so one core stays free for the audio path
    (measured with `spine bench audio` on 2 cores: 2 ASR threads gave xruns and a 540 ms cut, 1 gave none)."""
    early_pause_s: float = field(default=0.3, metadata=within(0.0, 10.0))
    """Start transcribing once the user has paused this long, in seconds, while the endpointer still waits for
    the end (less than `[vad] end_silence_s`); if the pause was the end, the text is ready sooner. 0: transcribe
    at the end."""

    @property
    def threads_to_use(self) -> int:
        return self.threads if self.threads is not None else max(1, (os.cpu_count() or 2) - 1)


@dataclass(frozen=True)
class TtsConfig:
    voice: str = "en_US-joe-medium"
    """Piper voice file stem under the models dir's tts/ folder."""
    lookahead_s: float = field(default=6.0, metadata=within(0.5, 120.0))
    """Synthesise the next sentence only while less than this much synthesised audio, in seconds, waits ahead of
    the speaker (and at most `in_flight` sentences are being synthesised): a cancel wastes little work."""
    in_flight: int = field(default=2, metadata=within(1, 16))
    """At most this many sentences are being synthesised at once."""
    first_clause_min_words: int = field(default=6, metadata=within(1, 100))
    """Before the reply's first sentence is complete, a clause of at least this many words ending in , ; or :
    goes to speech at once, so a long first sentence does not delay the first audio."""


@dataclass(frozen=True)
class ReplyConfig:
    """Where the replies come from: the built-in local responder, or an OpenAI-compatible chat server.

    To try the remote path without a model: run `spine fake-llm --port 8080` and set `backend = "openai"`
    (the default `base_url` points at it). The API key is never written here: name the environment variable
    (`api_key_env`) or the file (`api_key_file`, e.g. a systemd credential) that holds it.
    """

    backend: Literal["local", "openai"] = "local"
    """`local`: the built-in responder (time, date, timers, a story; no network). `openai`: stream the reply
    from the OpenAI-compatible server at `base_url` (OpenAI, llama.cpp's llama-server, vLLM, Ollama, ...)."""
    base_url: str = "http://127.0.0.1:8080/v1"
    """The server's API root (http:// or https://, usually ending in /v1); Spine POSTs to
    `{base_url}/chat/completions`. Only with `backend = "openai"`."""
    model: str = "local-model"
    """The model name sent with each request (a server serving one model may ignore it)."""
    api_key_env: str | None = field(default=None, metadata=example("OPENAI_API_KEY"))
    """The environment variable holding the API key; unset: no key is sent, as a local server needs none. Set
    only one of `api_key_env` and `api_key_file`."""
    api_key_file: Path | None = field(default=None, metadata=example("/run/credentials/spine.service/llm-key"))
    """A file holding the API key (surrounding white space ignored), e.g. $CREDENTIALS_DIRECTORY/llm-key."""
    system_prompt: str | None = field(default=None, metadata=example("Answer in one short sentence."))
    """The first message of every request; unset: a built-in prompt for short, speakable answers with no
    markdown; "" sends none."""
    connect_timeout_s: float = 5.0
    """Max time to open the connection (DNS, TCP and TLS), in seconds; more than 0."""
    first_token_timeout_s: float = 20.0
    """Max silence from sending the request to the first word, in seconds (a cold model loads meanwhile); more
    than 0."""
    idle_timeout_s: float = 10.0
    """Max silence between words once the first has come, in seconds; more than 0."""
    max_tokens: int | None = field(default=None, metadata=example(200))
    """Cap on a reply's length, in tokens, 1 or more; unset: the server decides."""
    temperature: float | None = field(default=None, metadata={**within(0.0, 2.0), **example(0.7)})
    """Sampling temperature; unset: the server decides."""
    token_interval_ms: float = field(default=20.0, metadata=within(0.0, 1000.0))
    """The local responder streams one word per interval, in milliseconds, as an LLM would (a remote model keeps
    its own pace; in virtual time this interval models every backend's word rate)."""

    def validate(self) -> str | None:
        problem = base_url_problem(self.base_url, "`base_url`", " with a host (e.g. http://127.0.0.1:8080/v1)")
        if problem is not None:
            return problem
        if not self.model.strip():
            return "`model` must not be empty"
        if self.api_key_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env):
            # Never echo the value: a key pasted here by mistake must not reach a log.
            return "`api_key_env` must be the name of an environment variable (letters, digits, _), not the key"
        if self.api_key_env is not None and self.api_key_file is not None:
            return "set only one of `api_key_env` and `api_key_file`"
        for name in ("connect_timeout_s", "first_token_timeout_s", "idle_timeout_s"):
            value = getattr(self, name)
            if not 0 < value < math.inf:
                return f"`{name}` must be a number of seconds > 0, got {value}"
        if self.max_tokens is not None and self.max_tokens < 1:
            return f"`max_tokens` must be >= 1, got {self.max_tokens}"
        return None


def base_url_problem(url: str, name: str, hint: str = "") -> str | None:
    """Why `url` cannot be an OpenAI-compatible server's base URL, or None: the one check, shared by the loader
    and the client (device/reply/openai.py). `name` is how the message calls the setting; `hint` (if any)
    follows the scheme requirement."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - parsing the port is the check: it raises on "host:abc"
    except ValueError:
        return f"{name} has an invalid port: {url!r}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{name} must be an http:// or https:// URL{hint}, got {url!r}"
    return None


@dataclass(frozen=True)
class SimConfig:
    """Costs model the jobs in virtual time (measured on x86)."""

    asr_fixed_ms: float = field(default=80.0, metadata=within(0.0, 60000.0))
    """Speech-to-text time per transcription, in milliseconds, on top of `asr_rtf`."""
    asr_rtf: float = field(default=0.15, metadata=within(0.0, 10.0))
    """Speech-to-text time per second of audio, in seconds (a real-time factor)."""
    tts_fixed_ms: float = field(default=30.0, metadata=within(0.0, 60000.0))
    """Synthesis time per piece of text (a sentence or a first clause), in milliseconds, on top of `tts_rtf`."""
    tts_rtf: float = field(default=0.06, metadata=within(0.0, 10.0))
    """Synthesis time per second of synthesised audio, in seconds (a real-time factor)."""
    reply_first_token_ms: float = field(default=40.0, metadata=within(0.0, 60000.0))
    """Time from the request to the reply's first word, in milliseconds (then one word per `[reply]
    token_interval_ms`)."""
    cancel_ack_ms: float = field(default=10.0, metadata=within(0.0, 60000.0))
    """Time a cancelled job takes to acknowledge the cancel, in milliseconds."""
    idle_tail_s: float = field(default=3.0, metadata=within(0.0, 600.0))
    """With no `duration_s` in the scene, stop once its script is done and the assistant has been idle this
    long, in seconds."""
    max_duration_s: float = field(default=600.0, metadata=within(1.0, 86400.0))
    """A scene never runs longer than this, in seconds (a stuck assistant ends the run instead of hanging it)."""
    start_time: str = "2026-11-25T09:41:00"
    """Local date and time at the scene's start in virtual time (so the time skill answers the same each run)."""


@dataclass(frozen=True)
class Config:
    audio: AudioConfig = field(default_factory=AudioConfig)
    """The sound card: the audio period, the devices, their rate, and reopening a lost card."""
    models: ModelsConfig = field(default_factory=ModelsConfig)
    """Where the model files are."""
    wake: WakeConfig = field(default_factory=WakeConfig)
    """The wake word."""
    vad: VadConfig = field(default_factory=VadConfig)
    """The endpointer: where, in the voice detector's probabilities, speech hints, starts, pauses and ends."""
    aec: AecConfig = field(default_factory=AecConfig)
    """The echo canceller."""
    listen: ListenConfig = field(default_factory=ListenConfig)
    """Listening for a request: how long to wait, how long a request may be, follow-ups, and timers ringing."""
    earcons: EarconsConfig = field(default_factory=EarconsConfig)
    """The chimes and the start-up sound."""
    barge_in: BargeInConfig = field(default_factory=BargeInConfig)
    """Interrupting the assistant."""
    asr: AsrConfig = field(default_factory=AsrConfig)
    """Speech to text (whisper.cpp)."""
    tts: TtsConfig = field(default_factory=TtsConfig)
    """Text to speech (Piper) and how far it runs ahead of the speaker."""
    reply: ReplyConfig = field(default_factory=ReplyConfig)
    """The reply backend."""
    sim: SimConfig = field(default_factory=SimConfig)
    """The simulated room (`spine demo` and the benches), in virtual time."""

    @property
    def period_samples(self) -> int:
        return SPINE_RATE_HZ * self.audio.period_ms // 1000

    def validate(self) -> str | None:
        if not 0.0 <= self.asr.early_pause_s < self.vad.end_silence_s:
            pause, end = self.asr.early_pause_s, self.vad.end_silence_s
            return f"`[asr] early_pause_s` must be 0 or more and less than `[vad] end_silence_s` ({end}), got {pause}"
        if self.aec.enabled and self.audio.period_ms % 10:
            period = self.audio.period_ms
            return f"`[audio] period_ms` must be a multiple of 10 with the echo canceller on, got {period}"
        return None


def load_config(path: Path | None) -> Config:
    return Config() if path is None else load_dataclass(Config, path)


def samples(seconds: float) -> int:
    """`seconds` in samples at Spine's rate."""
    return round(seconds * SPINE_RATE_HZ)


def core_config(config: Config) -> CoreConfig:
    """The decision parameters of the pure core, in samples: every field of `CoreConfig`, from the settings."""
    return CoreConfig(
        rate_hz=SPINE_RATE_HZ,
        listen_timeout_samples=samples(config.listen.timeout_s),
        max_utterance_samples=samples(config.listen.max_utterance_s),
        min_utterance_samples=samples(config.listen.min_utterance_s),
        preroll_samples=samples(config.listen.preroll_s),
        barge_in=config.barge_in.matrix(),
        confirm_samples=samples(config.barge_in.confirm_ms / 1000),
        follow_up_samples=samples(config.listen.follow_up_s),
        tts_lookahead_samples=samples(config.tts.lookahead_s),
        tts_in_flight=config.tts.in_flight,
        early_asr=config.asr.early_pause_s > 0,
        first_clause_min_words=config.tts.first_clause_min_words,
        stop_phrases=config.barge_in.stop_phrases,
        reopen_first_samples=samples(config.audio.reopen_first_s),
        reopen_max_samples=samples(config.audio.reopen_max_s),
        earcons=config.earcons.enabled,
        startup_sound=config.earcons.startup,
        wake_phrase=wake_phrase(config.wake),
        echo_tail_samples=samples(config.barge_in.echo_tail_s),
        own_words_window_words=config.barge_in.own_words_window_words,
        own_words_min_fraction=config.barge_in.own_words_min_fraction,
        own_one_word_tail_words=config.barge_in.own_one_word_tail_words,
        short_interruption_max_words=config.barge_in.short_interruption_max_words,
        breaker_self_heard=config.barge_in.breaker_self_heard,
        breaker_window_samples=samples(config.barge_in.breaker_window_s),
        breaker_hold_samples=samples(config.barge_in.breaker_hold_s),
        alarm_ring_gap_samples=samples(config.listen.alarm_ring_gap_s),
        alarm_ring_max_samples=samples(config.listen.alarm_ring_max_s),
    )


def wake_phrase(wake: WakeConfig) -> str:
    """What the wake word says, as words ("hey jarvis"): the core strips it from the front of a transcript."""
    return " ".join(re.sub(r"_v\d+(\.\d+)*$", "", wake.model_name).replace("_", " ").split())
