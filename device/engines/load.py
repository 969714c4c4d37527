"""Loads the engines a daemon needs from the configured models directory (the same for `demo` and `run`), each
ONNX Runtime model on the execution providers its section's `providers` setting chose
(device/engines/providers.py); `spine doctor` loads them the same way to show what each one runs on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from device.config import Config
from device.engines.asr import WhisperAsr
from device.engines.model_files import ModelPaths, verified_model_paths
from device.engines.providers import (
    OnnxModel,
    ProviderChoice,
    available_providers,
    choose_providers,
    session_providers,
    warn,
)
from device.engines.tts import PiperTts
from device.engines.vad import SileroVad
from device.engines.wakeword import WakeWordDetector


@dataclass(frozen=True)
class Engines:
    vad: SileroVad
    raw_vad: SileroVad
    """A twin of `vad` on the raw mic (its own state, the session shared), for while the echo canceller is not
    trusted."""
    wake: WakeWordDetector
    own_wake: WakeWordDetector
    """A twin of `wake` (its sessions shared), listening to what the speaker plays (self-trigger suppression)."""
    offset_wake: WakeWordDetector
    """A twin of `wake` (its sessions shared) for the second frame grid (device/runtime/wake_grids.py)."""
    other_wake: WakeWordDetector
    """A twin of `wake` on the mic `wake` does not hear, while echo may sound (device/runtime/hearing.py)."""
    asr: WhisperAsr
    tts: PiperTts


def provider_choices(config: Config) -> dict[str, ProviderChoice]:
    """Each ONNX Runtime section's `providers` resolved against what this onnxruntime offers."""
    available = available_providers()
    wanted = {"vad": config.vad.providers, "wake": config.wake.providers, "tts": config.tts.providers}
    return {section: choose_providers(names, available) for section, names in wanted.items()}


def load_engines(config: Config, deterministic: bool = False, between: Callable[[], None] = lambda: None) -> Engines:
    """Every model file is checked (present, its size, its sha256) before anything loads, so a missing or
    damaged one names itself and `spine models fetch` instead of leaving the assistant deaf or mute.

    `deterministic` makes the voice reproducible to the byte (the virtual clock's promise). `between` is called
    before each model loads and may raise to abandon loading there (`spine run` stopped while starting). A
    provider asked for and not there, or not started, is a warning on stderr: the model runs on the CPU.
    """
    paths = verified_model_paths(config)
    choices = provider_choices(config)
    for section, choice in choices.items():
        _warn(choice.missing_warning(section))
    between()
    vad_providers = session_providers(choices["vad"])
    vad = SileroVad(paths.vad, vad_providers)
    raw_vad = vad.twin()  # both run on the FSM thread: one session
    between()
    wake_providers = session_providers(choices["wake"])
    wake = WakeWordDetector(paths.melspec, paths.embedding, paths.wake_head, wake_providers)
    between()
    asr = WhisperAsr(paths.asr, threads=config.asr.threads_to_use)
    between()
    tts = PiperTts(paths.voice, paths.voice_config, deterministic, session_providers(choices["tts"]))
    for engine, section in ((vad, "vad"), (wake, "wake"), (tts, "tts")):
        _warn(OnnxModel(section, choices[section], engine.session_providers()).unused_warning())
    between()
    return Engines(
        vad=vad,
        raw_vad=raw_vad,
        wake=wake,
        own_wake=wake.twin(),  # hearing scores it on the FSM thread too: no second copy of the models
        offset_wake=wake.twin(),
        other_wake=wake.twin(),
        asr=asr,
        tts=tts,
    )


def load_onnx_models(config: Config, paths: ModelPaths) -> list[OnnxModel]:
    """The ONNX Runtime models of `config` loaded once each as `load_engines` loads them, for `spine doctor`:
    what each section asked for and what its sessions run on (nothing printed: the doctor reports it)."""
    choices = provider_choices(config)
    vad = SileroVad(paths.vad, session_providers(choices["vad"]))
    wake = WakeWordDetector(paths.melspec, paths.embedding, paths.wake_head, session_providers(choices["wake"]))
    tts = PiperTts(paths.voice, paths.voice_config, providers=session_providers(choices["tts"]))
    return [
        OnnxModel(section, choices[section], engine.session_providers())
        for engine, section in ((vad, "vad"), (wake, "wake"), (tts, "tts"))
    ]


def _warn(message: str | None) -> None:
    if message is not None:
        warn(message)
