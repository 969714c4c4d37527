"""Loads the engines a daemon needs from the configured models directory (the same for `demo` and `run`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from device.config import Config
from device.engines.asr import WhisperAsr
from device.engines.tts import PiperTts
from device.engines.vad import SileroVad
from device.engines.wakeword import WakeWordDetector
from device.errors import UserError
from device.models.manifest import default_models_dir, require_model


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


_WAKE_FILES = {
    "hey_jarvis": "wakeword/hey_jarvis_v0.1.onnx",
    "alexa": "wakeword/alexa_v0.1.onnx",
    "hey_mycroft": "wakeword/hey_mycroft_v0.1.onnx",
    "hey_rhasspy": "wakeword/hey_rhasspy_v0.1.onnx",
}


def models_dir(config: Config) -> Path:
    return config.models.dir if config.models.dir is not None else default_models_dir()


def load_engines(config: Config, deterministic: bool = False) -> Engines:
    """Every model file is checked before anything loads, so a missing one names `spine models fetch`.

    `deterministic` makes the voice reproducible to the byte (the virtual clock's promise).
    """
    root = models_dir(config)
    wake_head = config.wake.custom_model_path or require_model(root, _WAKE_FILES[config.wake.model])
    if not wake_head.is_file():
        raise UserError(f"custom wake word model not found: {wake_head} (see `[wake] custom_model_path`)")
    melspec = require_model(root, "wakeword/melspectrogram.onnx")
    embedding = require_model(root, "wakeword/embedding_model.onnx")
    vad = require_model(root, "vad/silero_vad.onnx")
    asr = require_model(root, "asr/ggml-tiny.en.bin")
    voice = require_model(root, f"tts/{config.tts.voice}.onnx")
    voice_config = require_model(root, f"tts/{config.tts.voice}.onnx.json")
    return Engines(
        vad=SileroVad(vad),
        raw_vad=SileroVad(vad),
        wake=WakeWordDetector(melspec, embedding, wake_head),
        own_wake=WakeWordDetector(melspec, embedding, wake_head),
        asr=WhisperAsr(asr, threads=config.asr.threads_to_use),
        tts=PiperTts(voice, voice_config, deterministic=deterministic),
    )
