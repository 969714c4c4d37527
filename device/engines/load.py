"""Loads the engines a daemon needs from the configured models directory (the same for `demo` and `run`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from device.config import Config
from device.engines.asr import WhisperAsr
from device.engines.model_files import verified_model_paths
from device.engines.tts import PiperTts
from device.engines.vad import SileroVad
from device.engines.wakeword import WakeWordDetector


@dataclass(frozen=True)
class Engines:
    vad: SileroVad
    raw_vad: SileroVad
    """A second voice model on the raw mic, for while the echo canceller is not trusted (its own state)."""
    wake: WakeWordDetector
    own_wake: WakeWordDetector
    """The same wake word model, listening to what the speaker plays (self-trigger suppression)."""
    asr: WhisperAsr
    tts: PiperTts


def load_engines(config: Config, deterministic: bool = False, between: Callable[[], None] = lambda: None) -> Engines:
    """Every model file is checked (present, its size, its sha256) before anything loads, so a missing or
    damaged one names itself and `spine models fetch` instead of leaving the assistant deaf or mute.

    `deterministic` makes the voice reproducible to the byte (the virtual clock's promise). `between` is called
    before each model loads and may raise to abandon loading there (`spine run` stopped while starting).
    """
    paths = verified_model_paths(config)
    between()
    vad, raw_vad = SileroVad(paths.vad), SileroVad(paths.vad)
    between()
    wake = WakeWordDetector(paths.melspec, paths.embedding, paths.wake_head)
    own_wake = WakeWordDetector(paths.melspec, paths.embedding, paths.wake_head)
    between()
    asr = WhisperAsr(paths.asr, threads=config.asr.threads_to_use)
    between()
    tts = PiperTts(paths.voice, paths.voice_config, deterministic=deterministic)
    between()
    return Engines(vad=vad, raw_vad=raw_vad, wake=wake, own_wake=own_wake, asr=asr, tts=tts)
