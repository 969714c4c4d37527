"""Settings of listening: the wake word (`[wake]`), the endpointer (`[vad]`) and a request's timing (`[listen]`).

Part of the settings' one home (device/config.py); a leaf like it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from device.settings.onnx import CPU_ONLY, ProviderName, providers_field
from device.tomlfile import example, within


@dataclass(frozen=True)
class WakeConfig:
    model: Literal["hey_jarvis", "alexa", "hey_mycroft", "hey_rhasspy"] = "hey_jarvis"
    """Pretrained openWakeWord head (CC BY-NC-SA 4.0); use `custom_model_path` for your own."""
    custom_model_path: Path | None = field(default=None, metadata=example("/etc/spine/hey_spine_v0.1.onnx"))
    """An openWakeWord ONNX head of your own (e.g. trained with openWakeWord's notebook); overrides `model`. The
    file's name, without a version suffix, is the wake phrase ("hey_spine_v0.1.onnx": "hey spine")."""
    threshold: float = field(default=0.5, metadata=within(0.0, 1.0))
    """The wake word model's score (a probability) at or above which the wake word is detected (more than 0):
    higher, fewer false wakes and more missed ones. A state's `[barge_in.<state>] wake_threshold` may ask for more."""
    faint_threshold: float = field(default=0.15, metadata=within(0.0, 1.0))
    """A score at least this (and below `threshold`) near the start of an utterance is a wake word said faintly,
    as over the assistant's echo: the request is transcribed from after it (0: off; less than `threshold`).
    Measured: such wake words scored 0.1-0.44, speech without one never above 0.04."""
    refractory_s: float = field(default=1.0, metadata=within(0.0, 10.0))
    """After a detection, ignore the wake word this long, in seconds (the score stays high for a few frames)."""
    own_speech_window_s: float = field(default=1.0, metadata=within(0.0, 10.0))
    """A detection on the mic up to this long, in seconds, after the wake word was found in what the speaker
    played is the assistant saying it (marked `in_own_speech`): it never wakes or interrupts anything."""
    providers: tuple[ProviderName, ...] = providers_field(CPU_ONLY)
    """ONNX Runtime execution providers for openWakeWord's three models, in order of preference: ["auto"] (the
    best GPU provider this onnxruntime offers, CUDA, else the CPU) or names from "TensorrtExecutionProvider",
    "CUDAExecutionProvider", "CPUExecutionProvider". The CPU is always added last; a name this onnxruntime does
    not offer is skipped with a warning at start. The CPU by default: 2 ms of work every 80 ms gains nothing
    from a GPU round trip (docs/jetson.md). `spine doctor` shows what each model runs on."""

    def validate(self) -> str | None:
        if self.faint_threshold and 0 < self.threshold <= self.faint_threshold:
            return f"`faint_threshold` must be below `threshold` ({self.threshold}), got {self.faint_threshold}"
        return None

    @property
    def model_name(self) -> str:
        """The wake word model's name: `model`, or the custom file's stem."""
        return self.model if self.custom_model_path is None else self.custom_model_path.stem


@dataclass(frozen=True)
class VadConfig:
    on_threshold: float = field(default=0.5, metadata=within(0.0, 1.0))
    """The voice detector's probability at or above which a 32 ms chunk is voice (more than 0): a run of such
    chunks is a hint (`hint_s`), then the start of speech (`start_s`)."""
    off_threshold: float = field(default=0.35, metadata=within(0.0, 1.0))
    """Within speech, a chunk below this probability is silence (`end_silence_s` of it end the utterance). At
    most `on_threshold` and more than 0: between the two, speech goes on but none starts (hysteresis)."""
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
    providers: tuple[ProviderName, ...] = providers_field(CPU_ONLY)
    """ONNX Runtime execution providers for the voice detector, in order of preference: ["auto"] or names, as
    `[wake] providers`. The CPU by default: 0.1 ms of work every 32 ms, on the loop that must answer every
    10 ms, gains nothing from a GPU round trip."""

    def validate(self) -> str | None:
        if self.off_threshold > self.on_threshold:
            return f"`off_threshold` must be at most `on_threshold` ({self.on_threshold}), got {self.off_threshold}"
        return None


@dataclass(frozen=True)
class ListenConfig:
    timeout_s: float = field(default=8.0, metadata=within(0.5, 120.0))
    """After the wake word, wait this long, in seconds, for speech before going back to idle (more than `[vad]
    start_s`)."""
    max_utterance_s: float = field(default=15.0, metadata=within(1.0, 120.0))
    """An utterance longer than this, in seconds, is cut there and transcribed as it is (more than
    `min_utterance_s` and than `[vad] end_silence_s`)."""
    min_utterance_s: float = field(default=0.2, metadata=within(0.0, 5.0))
    """Speech shorter than this, in seconds (a cough, a click), is not an utterance: keep listening."""
    preroll_s: float = field(default=0.15, metadata=within(0.0, 2.0))
    """Audio before the detected onset included in the transcription, in seconds (the voice detector lags the
    voice by a chunk)."""
    follow_up_s: float = field(default=5.0, metadata=within(0.0, 60.0))
    """After a reply is heard to its end, listen this long, in seconds, for a follow-up without the wake word
    (0: off; else more than `[vad] start_s`)."""
    alarm_ring_gap_s: float = field(default=2.0, metadata=within(0.0, 60.0))
    """A finished timer says its line, waits this long, in seconds, and says it again until it is stopped..."""
    alarm_ring_max_s: float = field(default=60.0, metadata=within(0.0, 3600.0))
    """...for at most this long, in seconds (no new ring starts after it), like a kitchen timer."""
