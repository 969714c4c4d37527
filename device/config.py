"""The daemon's configuration: one TOML file, frozen dataclasses, units in every name, unknown keys refused.

Every field has a default, so an empty file (or no `--config` at all) is a working configuration. The
sections mirror the organs; `core_config()` converts the decision parameters to samples for the pure core.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from device.core.states import DEFAULT_STOP_PHRASES, BargeInMatrix, BargeInRule, CoreConfig
from device.reply.url import base_url_problem
from device.runtime.hearing import HearingConfig
from device.tomlfile import load_dataclass

RATE_HZ = 16000
"""The device rate: every sample index, frame and model input in Spine is 16 kHz mono int16."""


@dataclass(frozen=True)
class AudioConfig:
    period_ms: int = 10
    """One audio period; the RT callback and the spine's audio step run once per period."""
    fade_ms: float = 4.0
    """Fade-out applied when playback is cut (no click); must fit in one period."""
    switch_interval_ms: float = 1.0
    """Python's thread switch interval while running (sys.setswitchinterval): how long a busy Python thread
    may keep the audio callback waiting for the GIL. 1 ms measured best (`spine bench audio`)."""
    device_rate_hz: int | None = None
    """Run the sound card at this rate; default 16000 when both devices take it, else a rate both take
    (Spine resamples on its own thread, never in the callback)."""
    input_device: str | None = None
    """Microphone: a device index or part of its name (`spine devices` lists them); default: the system's."""
    output_device: str | None = None
    """Speaker: a device index or part of its name; default: the system's."""

    def validate(self) -> str | None:
        if not 5 <= self.period_ms <= 40:
            return f"`period_ms` must be 5..40, got {self.period_ms}"
        if not 0.5 <= self.fade_ms <= self.period_ms:
            return f"`fade_ms` must be 0.5..period_ms ({self.period_ms}), got {self.fade_ms}"
        return None


@dataclass(frozen=True)
class ModelsConfig:
    dir: Path | None = None
    """Where `spine models fetch` put the models; default $SPINE_MODELS_DIR or ~/.local/share/spine/models."""


@dataclass(frozen=True)
class WakeConfig:
    model: Literal["hey_jarvis", "alexa", "hey_mycroft", "hey_rhasspy"] = "hey_jarvis"
    """Pretrained openWakeWord head (CC BY-NC-SA 4.0); use `custom_model_path` for your own."""
    custom_model_path: Path | None = None
    """An openWakeWord ONNX head of your own (e.g. trained with openWakeWord's notebook); overrides `model`."""
    threshold: float = 0.5
    refractory_s: float = 1.0


@dataclass(frozen=True)
class VadConfig:
    on_threshold: float = 0.5
    off_threshold: float = 0.35
    start_s: float = 0.2
    """Speech this long (consecutive) starts an utterance."""
    end_silence_s: float = 0.7
    """Silence this long ends an utterance."""
    hint_s: float = 0.032
    """Voice this long is a hint: while the assistant speaks, it pauses playback until speech is confirmed."""


@dataclass(frozen=True)
class AecConfig:
    enabled: bool = True
    """Cancel the speaker's echo from the mic (WebRTC AEC3). Off: voice over playback is still told from the
    assistant's own echo by the played reference (`device/runtime/echo_reference.py`), but the voice detector
    then hears the raw mic, so a user much quieter than the echo is not heard."""
    converge_erle_db: float = 10.0
    """Speech may interrupt playback once the canceller removes this much echo (measured, not assumed)."""

    def validate(self) -> str | None:
        if not 3.0 <= self.converge_erle_db <= 40.0:
            return f"`converge_erle_db` must be 3..40, got {self.converge_erle_db}"
        return None


@dataclass(frozen=True)
class EarconsConfig:
    enabled: bool = True
    """Chime when the wake word is accepted, when nothing was said after it, and on mute/unmute."""
    level_dbfs: float = -14.0
    """Peak level of the chimes (speech peaks near -3 dBFS)."""
    startup: bool = True
    """Play the 1.2 s start-up sound once at start: the echo canceller and the echo model learn the room from
    it, so the user can talk over the first answer from its first syllable. Off: they learn it from the
    first half second or so of the first answer, which cannot be interrupted by voice until then."""

    def validate(self) -> str | None:
        if not -60.0 <= self.level_dbfs <= 0.0:
            return f"`level_dbfs` must be -60..0, got {self.level_dbfs}"
        return None


@dataclass(frozen=True)
class ListenConfig:
    timeout_s: float = 8.0
    """After the wake word, wait this long for speech before going back to idle."""
    max_utterance_s: float = 15.0
    min_utterance_s: float = 0.2
    preroll_s: float = 0.15
    """Audio before the detected onset included in the transcription (Silero lags the voice by a chunk)."""
    follow_up_s: float = 5.0
    """After a reply is heard to its end, listen this long for a follow-up without the wake word (0: off)."""
    alarm_ring_gap_s: float = 2.0
    """A finished timer says its line, waits this long, and says it again until it is stopped..."""
    alarm_ring_max_s: float = 60.0
    """...for at most this long (no new ring starts after it), like a kitchen timer."""


@dataclass(frozen=True)
class BargeInRow:
    """One state's row of the barge-in matrix; a key left out keeps that state's default (see BargeInMatrix)."""

    wake: bool | None = None
    """The wake word interrupts this state."""
    speech: bool | None = None
    """User speech interrupts this state (over playback: pause on a hint, cancel once confirmed)."""
    wake_threshold: float | None = None
    """Wake word score needed to interrupt this state (at least `[wake] threshold`, which hearing applies)."""
    speech_probability: float | None = None
    """Voice probability a hint needs to pause this state's playback."""

    def over(self, default: BargeInRule) -> BargeInRule:
        return BargeInRule(
            wake=default.wake if self.wake is None else self.wake,
            speech=default.speech if self.speech is None else self.speech,
            wake_threshold=default.wake_threshold if self.wake_threshold is None else self.wake_threshold,
            speech_probability=(
                default.speech_probability if self.speech_probability is None else self.speech_probability
            ),
        )


@dataclass(frozen=True)
class BargeInConfig:
    """What may interrupt the assistant, state by state (the defaults are `BargeInMatrix` in the core):

    | state        | wake word | speech |
    |--------------|-----------|--------|
    | transcribing | yes       | no     |
    | thinking     | yes       | no     |
    | speaking     | yes       | yes    |
    | announcing   | yes       | yes    |
    """

    transcribing: BargeInRow = field(default_factory=BargeInRow)
    thinking: BargeInRow = field(default_factory=BargeInRow)
    speaking: BargeInRow = field(default_factory=BargeInRow)
    announcing: BargeInRow = field(default_factory=BargeInRow)
    confirm_ms: float = 400.0
    """After a hint of voice paused playback, speech must be confirmed within this long or playback resumes."""
    stop_phrases: tuple[str, ...] = DEFAULT_STOP_PHRASES
    """An interrupting utterance that says only one of these (lower case, no punctuation) ends the exchange."""
    echo_tail_s: float = 0.5
    """An utterance that began while the assistant spoke, or this long after, and repeats its last words is its
    own echo: never answered (a self-interruption)."""
    short_interruption_max_words: int = 2
    """A talk-over of at most this many words (the wake phrase aside) that whisper did not read as a stop phrase
    is still taken as a stop, never answered (a stop said over echo is often misheard). 0: answer them."""
    breaker_self_heard: int = 2
    """This many self-interruptions within `breaker_window_s` suspend voice barge-in (the wake word still
    interrupts) until the echo canceller converges again or `breaker_hold_s` pass; 0: never."""
    breaker_window_s: float = 60.0
    breaker_hold_s: float = 60.0

    def matrix(self) -> BargeInMatrix:
        defaults = BargeInMatrix()
        return BargeInMatrix(
            transcribing=self.transcribing.over(defaults.transcribing),
            thinking=self.thinking.over(defaults.thinking),
            speaking=self.speaking.over(defaults.speaking),
            announcing=self.announcing.over(defaults.announcing),
        )

    def validate(self) -> str | None:
        if not 50.0 <= self.confirm_ms <= 2000.0:
            return f"`confirm_ms` must be 50..2000, got {self.confirm_ms}"
        if not 0.0 <= self.echo_tail_s <= 5.0:
            return f"`echo_tail_s` must be 0..5, got {self.echo_tail_s}"
        if not 0 <= self.short_interruption_max_words <= 10:
            return f"`short_interruption_max_words` must be 0..10, got {self.short_interruption_max_words}"
        if not 0 <= self.breaker_self_heard <= 100:
            return f"`breaker_self_heard` must be 0..100, got {self.breaker_self_heard}"
        for name in ("breaker_window_s", "breaker_hold_s"):
            if not 1.0 <= getattr(self, name) <= 3600.0:
                return f"`{name}` must be 1..3600 seconds, got {getattr(self, name)}"
        return None


@dataclass(frozen=True)
class AsrConfig:
    threads: int | None = None
    """whisper.cpp threads; default: one fewer than the cores, so one core stays free for the audio path
    (measured with `spine bench audio` on 2 cores: 2 ASR threads gave xruns and a 540 ms cut, 1 gave none)."""
    early_pause_s: float = 0.3
    """Start transcribing once the user has paused this long, while the endpointer still waits for the end
    (`[vad] end_silence_s`); if the pause was the end, the text is ready sooner. 0: transcribe at the end."""

    @property
    def threads_to_use(self) -> int:
        return self.threads if self.threads is not None else max(1, (os.cpu_count() or 2) - 1)


@dataclass(frozen=True)
class TtsConfig:
    voice: str = "en_US-joe-medium"
    """Piper voice file stem under the models dir's tts/ folder."""


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
    api_key_env: str | None = None
    """The environment variable holding the API key (e.g. "OPENAI_API_KEY"); unset: no key is sent, as a
    local server needs none. Set only one of `api_key_env` and `api_key_file`."""
    api_key_file: Path | None = None
    """A file holding the API key (surrounding white space ignored), e.g. $CREDENTIALS_DIRECTORY/llm-key."""
    system_prompt: str | None = None
    """The first message of every request; unset: a built-in prompt for short, speakable answers with no
    markdown; "" sends none."""
    connect_timeout_s: float = 5.0
    """Max time to open the connection (DNS, TCP and TLS), in seconds."""
    first_token_timeout_s: float = 20.0
    """Max silence from sending the request to the first word, in seconds (a cold model loads meanwhile)."""
    idle_timeout_s: float = 10.0
    """Max silence between words once the first has come, in seconds."""
    max_tokens: int | None = None
    """Cap on a reply's length, in tokens; unset: the server decides."""
    temperature: float | None = None
    """Sampling temperature, 0..2; unset: the server decides."""
    token_interval_ms: float = 20.0
    """The local responder streams one word per interval, as an LLM would (a remote model keeps its own pace;
    in virtual time this interval models every backend's word rate)."""

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
        if self.temperature is not None and not 0.0 <= self.temperature <= 2.0:
            return f"`temperature` must be 0..2, got {self.temperature}"
        if not 0.0 <= self.token_interval_ms <= 1000.0:
            return f"`token_interval_ms` must be 0..1000, got {self.token_interval_ms}"
        return None


@dataclass(frozen=True)
class SimConfig:
    """How the simulated room runs (`spine demo`). Costs model the jobs in virtual time (measured on x86)."""

    asr_fixed_ms: float = 80.0
    asr_rtf: float = 0.15
    """ASR time per second of audio."""
    tts_fixed_ms: float = 30.0
    tts_rtf: float = 0.06
    """TTS time per second of synthesised audio."""
    reply_first_token_ms: float = 40.0
    cancel_ack_ms: float = 10.0
    idle_tail_s: float = 3.0
    """With no `duration_s`, stop once the script is done and the assistant has been idle this long."""
    max_duration_s: float = 600.0
    """A scene never runs longer than this (a stuck assistant ends the run instead of hanging it)."""
    start_time: str = "2026-11-25T09:41:00"
    """Local time of day at the scene's start in virtual time (so the time skill answers the same each run)."""


@dataclass(frozen=True)
class Config:
    audio: AudioConfig = field(default_factory=AudioConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    wake: WakeConfig = field(default_factory=WakeConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    aec: AecConfig = field(default_factory=AecConfig)
    listen: ListenConfig = field(default_factory=ListenConfig)
    earcons: EarconsConfig = field(default_factory=EarconsConfig)
    barge_in: BargeInConfig = field(default_factory=BargeInConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    reply: ReplyConfig = field(default_factory=ReplyConfig)
    sim: SimConfig = field(default_factory=SimConfig)

    @property
    def period_samples(self) -> int:
        return RATE_HZ * self.audio.period_ms // 1000

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
    return round(seconds * RATE_HZ)


def core_config(config: Config) -> CoreConfig:
    return CoreConfig(
        rate_hz=RATE_HZ,
        listen_timeout_samples=samples(config.listen.timeout_s),
        max_utterance_samples=samples(config.listen.max_utterance_s),
        min_utterance_samples=samples(config.listen.min_utterance_s),
        preroll_samples=samples(config.listen.preroll_s),
        barge_in=config.barge_in.matrix(),
        confirm_samples=samples(config.barge_in.confirm_ms / 1000),
        follow_up_samples=samples(config.listen.follow_up_s),
        stop_phrases=config.barge_in.stop_phrases,
        earcons=config.earcons.enabled,
        early_asr=config.asr.early_pause_s > 0,
        startup_sound=config.earcons.startup,
        wake_phrase=wake_phrase(config.wake),
        echo_tail_samples=samples(config.barge_in.echo_tail_s),
        short_interruption_max_words=config.barge_in.short_interruption_max_words,
        breaker_self_heard=config.barge_in.breaker_self_heard,
        breaker_window_samples=samples(config.barge_in.breaker_window_s),
        breaker_hold_samples=samples(config.barge_in.breaker_hold_s),
        alarm_ring_gap_samples=samples(config.listen.alarm_ring_gap_s),
        alarm_ring_max_samples=samples(config.listen.alarm_ring_max_s),
    )


def wake_phrase(wake: WakeConfig) -> str:
    """What the wake word says, as words ("hey jarvis"): the core strips it from the front of a transcript."""
    name = wake.model if wake.custom_model_path is None else wake.custom_model_path.stem
    return " ".join(re.sub(r"_v\d+(\.\d+)*$", "", name).replace("_", " ").split())


def hearing_config(config: Config) -> HearingConfig:
    return HearingConfig(
        wake_model=config.wake.model if config.wake.custom_model_path is None else config.wake.custom_model_path.stem,
        wake_threshold=config.wake.threshold,
        wake_refractory_samples=samples(config.wake.refractory_s),
        vad_on_threshold=config.vad.on_threshold,
        vad_off_threshold=config.vad.off_threshold,
        hint_samples=samples(config.vad.hint_s),
        start_samples=samples(config.vad.start_s),
        end_silence_samples=samples(config.vad.end_silence_s),
        pause_samples=samples(config.asr.early_pause_s),
    )
