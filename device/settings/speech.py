"""Settings of the speech engines: where the model files are (`[models]`), speech to text (`[asr]`) and text to
speech (`[tts]`).

Part of the settings' one home (device/config.py); a leaf like it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from device.settings.onnx import AUTO, ProviderName, providers_field
from device.tomlfile import example, within


@dataclass(frozen=True)
class ModelsConfig:
    dir: Path | None = field(default=None, metadata=example("/var/lib/spine/models"))
    """Where `spine models fetch` put the models (a directory; start-up checks each file's sha256 against the
    manifest); unset: $SPINE_MODELS_DIR, else ~/.local/share/spine/models."""


@dataclass(frozen=True)
class AsrConfig:
    threads: int | None = field(default=None, metadata={**within(1, 256), **example(1)})
    """whisper.cpp threads; unset: one fewer than the cores, so one core stays free for the audio path
    (measured with `spine bench audio` on 2 cores: 2 ASR threads gave xruns and a 540 ms cut, 1 gave none)."""
    early_pause_s: float = field(default=0.3, metadata=within(0.0, 10.0))
    """Start transcribing once the user has paused this long, in seconds, while the endpointer still waits for
    the end (less than `[vad] end_silence_s`); if the pause was the end, the text is ready sooner. 0: transcribe
    at the end."""
    timeout_s: float = field(default=30.0, metadata=within(1.0, 600.0))
    """How long speech to text may take once the user has finished, in seconds: with no transcript by then (a
    hung engine) the turn ends with a short apology and the job is cancelled (one that does not stop is logged
    as leaked). Whisper tiny transcribes the longest utterance (`[listen] max_utterance_s`) in a few seconds on a
    Pi 4."""

    @property
    def threads_to_use(self) -> int:
        return self.threads if self.threads is not None else max(1, (os.cpu_count() or 2) - 1)


@dataclass(frozen=True)
class TtsConfig:
    voice: str = "en_US-joe-medium"
    """Piper voice file stem under the models dir's tts/ folder: one the model manifest (models/manifest.toml)
    lists."""
    lookahead_s: float = field(default=6.0, metadata=within(0.5, 120.0))
    """Synthesise the next sentence only while less than this much synthesised audio, in seconds, waits ahead of
    the speaker (and at most `in_flight` sentences are being synthesised): a cancel wastes little work."""
    in_flight: int = field(default=2, metadata=within(1, 16))
    """At most this many sentences are being synthesised at once."""
    timeout_s: float = field(default=30.0, metadata=within(1.0, 600.0))
    """How long speech synthesis may go without delivering a sentence it was asked for, in seconds: past it (a
    hung engine) the answer ends with a short apology (an apology's own synthesis that hangs just ends it) and the
    job is cancelled (one that does not stop is logged as leaked). Piper says a long sentence in well under a
    second on a Pi 4."""
    first_clause_min_words: int = field(default=6, metadata=within(1, 100))
    """Before the reply's first sentence is complete, a clause of at least this many words ending in , ; or :
    goes to speech at once, so a long first sentence does not delay the first audio."""
    providers: tuple[ProviderName, ...] = providers_field((AUTO,))
    """ONNX Runtime execution providers for the Piper voice, in order of preference: ["auto"] (CUDA when this
    onnxruntime offers it, else the CPU: on a Pi, the CPU) or names, as `[wake] providers`. TensorRT only when
    named: it compiles for each new sentence length the first time (docs/jetson.md)."""
