"""The daemon's settings: one TOML file into frozen dataclasses, one home per setting.

Every setting is defined once, in its section's dataclass under device/settings/ (one module per area: audio,
listen, barge_in, speech, reply, sim): its default, a unit in its name (`_s`, `_ms`, `_hz`, `_db`, `_dbfs`,
`_words`), a docstring saying what it does, and its range (`within(low, high)`, enforced by the loader at the
key's line; what depends on another setting is checked by a `validate`). Every field has a default, so an empty
file (or no `--config` at all) is a working configuration. `spine config --default` prints all of it as a
commented TOML file (device/config_cli.py).

This module holds `Config`, the whole file (one field per `[table]`), and re-exports every section's class, so
`from device.config import ReplyConfig` is the one import the rest of the code needs.

Times are in seconds or milliseconds here and become samples at `SPINE_RATE_HZ` once, where they are handed
over: `core_config()` below for the pure core, `hearing_config()` in device/runtime/hearing.py for hearing.

This module and device/settings/ are a leaf: they import device.core (the types of the decision parameters),
device.rates and device.tomlfile, and nothing that reads the settings (runtime, engines, audio, reply backends,
simulation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from device.core.states import CoreConfig
from device.rates import SPINE_RATE_HZ
from device.settings.audio import AecConfig, AudioConfig, EarconsConfig
from device.settings.barge_in import BargeInConfig, BargeInRow
from device.settings.listen import ListenConfig, VadConfig, WakeConfig
from device.settings.reply import ReplyConfig, base_url_problem
from device.settings.sim import SimConfig
from device.settings.speech import AsrConfig, ModelsConfig, TtsConfig
from device.tomlfile import load_dataclass

__all__ = [
    "AecConfig",
    "AsrConfig",
    "AudioConfig",
    "BargeInConfig",
    "BargeInRow",
    "Config",
    "EarconsConfig",
    "ListenConfig",
    "ModelsConfig",
    "ReplyConfig",
    "SimConfig",
    "TtsConfig",
    "VadConfig",
    "WakeConfig",
    "base_url_problem",
    "core_config",
    "load_config",
    "samples",
    "wake_phrase",
]


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
