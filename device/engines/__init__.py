"""Thin synchronous adapters around the model libraries: wake word, VAD, ASR, TTS, resampling.

Each adapter takes explicit file paths (the caller resolves them from the models manifest), loads its model in
its constructor, and then only computes: no threads, no events, no clock. The ONNX Runtime ones (VAD, wake
word, TTS) also take the execution providers their sessions run on (device/engines/providers.py). The runtime
wraps them. Audio is 16 kHz mono int16 at every boundary (`SPINE_RATE_HZ`, device/rates.py). The adapters keep
state between calls (stream buffers, whisper.cpp's context), so each one belongs to one thread at a time. ASR
and TTS release the GIL while they compute (measured: the main thread kept running every ~5-10 ms during both).

A missing or unreadable model file is a `UserError` naming the file and the fix (`spine models fetch`), so a
bad install fails at start-up with one actionable line instead of a traceback from deep inside a library.

Import the adapters from their modules (`device.engines.asr`, ...): this package stays light because each
library costs up to a second to import.
"""

from __future__ import annotations

from pathlib import Path

from device.errors import UserError

_FETCH_HINT = "run `spine models fetch` to download or replace it"


def require_model_file(path: Path, what: str) -> Path:
    """`path` if it is a file; otherwise the `UserError` a user can act on.

    Checked before handing the path to a library: some would fall back to a download (pywhispercpp) or to a
    bundled default (openWakeWord) instead of failing.
    """
    if not path.is_file():
        raise UserError(f"{what} model file not found: {path}; {_FETCH_HINT}")
    return path


def model_load_error(path: Path | str, what: str, reason: object) -> UserError:
    """The error for a model file that exists but its library cannot load (truncated, corrupt, wrong kind)."""
    return UserError(f"{what} model file could not be loaded: {path} ({reason}); it may be corrupt: {_FETCH_HINT}")
