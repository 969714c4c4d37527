"""The daemon's settings: one TOML file into frozen dataclasses, one home per setting.

Every setting is defined once, in its section's dataclass under device/settings/ (one module per area: audio,
listen, barge_in, speech, reply, sim): its default, a unit in its name (`_s`, `_ms`, `_hz`, `_db`, `_dbfs`,
`_words`), a docstring saying what it does, and its range (`within(low, high)`, enforced by the loader at the
key's line; what depends on another setting of its table is checked by the table's `validate`, what spans
tables by `Config.problem`, at the line of the key). Every field has a default, so an empty
file (or no `--config` at all) is a working configuration. `spine config --default` prints all of it as a
commented TOML file (device/config_cli.py).

This module holds `Config`, the whole file (one field per `[table]`), and re-exports every section's class, so
`from device.config import ReplyConfig` is the one import the rest of the code needs.

Times are in seconds or milliseconds here and become samples at `SPINE_RATE_HZ` once, where they are handed
over: `core_config()` below for the pure core, `hearing_config()` in device/runtime/hearing.py for hearing.

This module and device/settings/ are a leaf: they import device.core (the types of the decision parameters),
device.rates and device.tomlfile, and nothing that reads the settings (runtime, engines, audio, reply backends,
simulation); this module also reads the model manifest (device/models/manifest.py, a leaf itself), so that a
`[tts] voice` it does not list and a `[models] dir` that is not a directory are refused at their line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from device.core.states import CoreConfig
from device.errors import UserError
from device.models.integrity import check_models_dir
from device.models.manifest import load_manifest
from device.rates import SPINE_RATE_HZ
from device.settings.audio import AecConfig, AudioConfig, EarconsConfig
from device.settings.barge_in import BargeInConfig, BargeInRow
from device.settings.listen import ListenConfig, VadConfig, WakeConfig
from device.settings.log import LogConfig
from device.settings.monitor import MonitorConfig
from device.settings.reply import ReplyConfig, base_url_problem
from device.settings.sim import SimConfig
from device.settings.speech import AsrConfig, ModelsConfig, TtsConfig
from device.tomlfile import load_dataclass
from device.tomlfile_lines import KeyLines, KeyPath

__all__ = [
    "AecConfig",
    "AsrConfig",
    "AudioConfig",
    "BargeInConfig",
    "BargeInRow",
    "Config",
    "EarconsConfig",
    "ListenConfig",
    "LogConfig",
    "ModelsConfig",
    "ReplyConfig",
    "SimConfig",
    "TtsConfig",
    "VadConfig",
    "WakeConfig",
    "base_url_problem",
    "core_config",
    "load_config",
    "manifest_voices",
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
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    """The monitoring page in a browser (WebRTC), remote control and Prometheus `/metrics`."""
    log: LogConfig = field(default_factory=LogConfig)
    """The event log of `spine run`: the size of its parts and the disk all of Spine's logs may take."""

    @property
    def period_samples(self) -> int:
        return SPINE_RATE_HZ * self.audio.period_ms // 1000

    def problem(self) -> tuple[tuple[KeyPath, ...], str] | None:
        """The first relation between settings that does not hold: (the keys it involves, the message).

        Only relations whose breach leaves the assistant deaf, always listening or unable to be interrupted;
        relations within one table are its `validate` (the loader's). `load_config` points at the line of the
        first involved key the file sets.
        """
        for keys, message in _relations(self):
            if message is not None:
                return keys, message
        return None


def _relations(config: Config) -> Iterator[tuple[tuple[KeyPath, ...], str | None]]:
    """Each relation as (its keys, None if it holds, else why it must hold), lazily."""
    audio, vad, listen, asr = config.audio, config.vad, config.listen, config.asr
    yield (
        (("asr", "early_pause_s"), ("vad", "end_silence_s")),
        (
            None
            if 0.0 <= asr.early_pause_s < vad.end_silence_s
            else f"`[asr] early_pause_s` must be 0 or more and less than `[vad] end_silence_s` ({vad.end_silence_s}), "
            f"got {asr.early_pause_s}"
        ),
    )
    yield (
        (("audio", "period_ms"), ("aec", "enabled")),
        (
            None
            if not (config.aec.enabled and audio.period_ms % 10)
            else f"`[audio] period_ms` must be a multiple of 10 with the echo canceller on, got {audio.period_ms}"
        ),
    )
    yield (
        (("listen", "min_utterance_s"), ("listen", "max_utterance_s")),
        (
            None
            if listen.min_utterance_s < listen.max_utterance_s
            else f"`[listen] min_utterance_s` ({listen.min_utterance_s}) must be less than `[listen] max_utterance_s` "
            f"({listen.max_utterance_s}): every request that ends by itself would be too short to answer"
        ),
    )
    yield (
        (("vad", "end_silence_s"), ("listen", "max_utterance_s")),
        (
            None
            if vad.end_silence_s < listen.max_utterance_s
            else f"`[vad] end_silence_s` ({vad.end_silence_s}) must be less than `[listen] max_utterance_s` "
            f"({listen.max_utterance_s}): no request could end by a pause, each would be cut at the limit"
        ),
    )
    yield (
        (("vad", "start_s"), ("listen", "timeout_s")),
        (
            None
            if vad.start_s < listen.timeout_s
            else f"`[vad] start_s` ({vad.start_s}) must be less than `[listen] timeout_s` ({listen.timeout_s}): "
            "listening would end before any speech could start"
        ),
    )
    yield (
        (("listen", "follow_up_s"), ("vad", "start_s")),
        (
            None
            if listen.follow_up_s == 0 or listen.follow_up_s > vad.start_s
            else f"`[listen] follow_up_s` ({listen.follow_up_s}) must be 0 (off) or more than `[vad] start_s` "
            f"({vad.start_s}): no follow-up could start within it"
        ),
    )
    # A hint pauses playback and arms the confirm timer; speech is confirmed (start_s - hint_s) later.
    confirm_after_hint_s = vad.start_s - vad.hint_s
    yield (
        (("barge_in", "confirm_ms"), ("vad", "start_s"), ("vad", "hint_s")),
        (
            None
            if config.barge_in.confirm_ms / 1000 > confirm_after_hint_s
            else f"`[barge_in] confirm_ms` ({config.barge_in.confirm_ms}) must be more than `[vad] start_s` - "
            f"`[vad] hint_s` ({round(confirm_after_hint_s * 1000, 3)} ms): speech over playback could never be "
            "confirmed, so the user could never interrupt by voice"
        ),
    )
    yield (
        (("wake", "threshold"),),
        (None if config.wake.threshold > 0 else "`[wake] threshold` must be more than 0: 0 wakes on every frame"),
    )
    yield (
        (("vad", "on_threshold"),),
        (
            None
            if vad.on_threshold > 0
            else "`[vad] on_threshold` must be more than 0: 0 takes every chunk for voice, so it always hears speech"
        ),
    )
    yield (
        (("vad", "off_threshold"),),
        (
            None
            if vad.off_threshold > 0
            else "`[vad] off_threshold` must be more than 0: 0 never hears silence, so no request ends by a pause"
        ),
    )


def load_config(path: Path | None) -> Config:
    """The configuration in `path` (None: the defaults), checked as `spine run` needs it: each key's type and
    range and each table's `validate` (the loader), the relations between tables (`Config.problem`), and what
    the file names outside itself (`[models] dir`, `[tts] voice`). Every problem is a UserError at FILE:LINE."""
    config = Config() if path is None else load_dataclass(Config, path)
    found = config.problem() or _outside_problem(config)
    if found is None:
        return config
    keys, message = found
    if path is None:
        raise UserError(message, where="the built-in defaults")
    lines = KeyLines(path.read_text(encoding="utf-8"))
    line = next((lines.lines[key] for key in keys if key in lines.lines), lines.line_of(keys[0]))
    raise UserError(message, where=f"{path}:{line}")


def _outside_problem(config: Config) -> tuple[tuple[KeyPath, ...], str] | None:
    """What the file names outside itself: the models directory and the voice (the manifest lists the voices)."""
    if config.models.dir is not None:
        try:
            check_models_dir(config.models.dir, "`[models] dir`")
        except UserError as error:
            return (("models", "dir"),), error.message
    voices = manifest_voices()
    if config.tts.voice not in voices:
        return (("tts", "voice"),), (
            f'`[tts] voice` "{config.tts.voice}" is not a voice in the model manifest; the voices are: '
            f"{', '.join(voices)} (a new voice needs its files in models/manifest.toml and `spine models fetch`)"
        )
    return None


def manifest_voices() -> tuple[str, ...]:
    """The Piper voices the model manifest lists (a `tts/NAME.onnx` file each)."""
    paths = (PurePosixPath(model.path) for model in load_manifest())
    return tuple(path.stem for path in paths if path.parent.name == "tts" and path.suffix == ".onnx")


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
        short_interruption_max_samples=samples(config.barge_in.short_interruption_max_s),
        breaker_self_heard=config.barge_in.breaker_self_heard,
        breaker_window_samples=samples(config.barge_in.breaker_window_s),
        breaker_hold_samples=samples(config.barge_in.breaker_hold_s),
        alarm_ring_gap_samples=samples(config.listen.alarm_ring_gap_s),
        alarm_ring_max_samples=samples(config.listen.alarm_ring_max_s),
        memory_messages=2 * config.reply.memory_turns,
        asr_timeout_samples=samples(config.asr.timeout_s),
        tts_timeout_samples=samples(config.tts.timeout_s),
    )


def wake_phrase(wake: WakeConfig) -> str:
    """What the wake word says, as words ("hey jarvis"): the core strips it from the front of a transcript."""
    return " ".join(re.sub(r"_v\d+(\.\d+)*$", "", wake.model_name).replace("_", " ").split())
