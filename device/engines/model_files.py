"""Which model files a configuration needs, where they are, and their check before anything loads.

Light on purpose (no model library is imported): `spine doctor` checks the models with it too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from device.config import Config
from device.errors import UserError
from device.models.integrity import Hasher, VerifiedCache, check_models_dir, default_cache_path, sha256_file
from device.models.integrity import verify_model_files as verify_files
from device.models.manifest import default_models_dir

WAKE_FILES = {
    "hey_jarvis": "wakeword/hey_jarvis_v0.1.onnx",
    "alexa": "wakeword/alexa_v0.1.onnx",
    "hey_mycroft": "wakeword/hey_mycroft_v0.1.onnx",
    "hey_rhasspy": "wakeword/hey_rhasspy_v0.1.onnx",
}
MELSPEC = "wakeword/melspectrogram.onnx"
EMBEDDING = "wakeword/embedding_model.onnx"
VAD = "vad/silero_vad.onnx"
ASR = "asr/ggml-tiny.en.bin"


@dataclass(frozen=True)
class ModelPaths:
    """The installed, verified files the engines load."""

    wake_head: Path
    melspec: Path
    embedding: Path
    vad: Path
    asr: Path
    voice: Path
    voice_config: Path


def models_dir(config: Config) -> Path:
    return config.models.dir if config.models.dir is not None else default_models_dir()


def _models_dir_source(config: Config) -> str:
    """How the user named the models directory, for an error about it."""
    if config.models.dir is not None:
        return "`[models] dir`"
    return "$SPINE_MODELS_DIR" if os.environ.get("SPINE_MODELS_DIR") else "the models directory"


def voice_files(voice: str) -> tuple[str, str]:
    """The manifest paths of a Piper voice: the model and its JSON config."""
    return f"tts/{voice}.onnx", f"tts/{voice}.onnx.json"


def verified_model_paths(
    config: Config, cache: VerifiedCache | None = None, hasher: Hasher = sha256_file
) -> ModelPaths:
    """Every file `config` needs, present and matching the manifest's sha256 (hashed once, then cached), or the
    UserError naming the first that is not and the fix. A custom wake word head is not in the manifest: it is
    only checked to exist."""
    root = models_dir(config)
    check_models_dir(root, _models_dir_source(config))
    custom = config.wake.custom_model_path
    if custom is not None and not custom.is_file():
        raise UserError(f"custom wake word model not found: {custom} (see `[wake] custom_model_path`)")
    voice, voice_config = voice_files(config.tts.voice)
    wanted = [MELSPEC, EMBEDDING, VAD, ASR, voice, voice_config]
    if custom is None:
        wanted.insert(0, WAKE_FILES[config.wake.model])
    cache = VerifiedCache(default_cache_path()) if cache is None else cache
    installed = verify_files(root, wanted, cache, hasher)
    return ModelPaths(
        wake_head=custom if custom is not None else installed[WAKE_FILES[config.wake.model]],
        melspec=installed[MELSPEC],
        embedding=installed[EMBEDDING],
        vad=installed[VAD],
        asr=installed[ASR],
        voice=installed[voice],
        voice_config=installed[voice_config],
    )
