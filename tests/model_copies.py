"""A private copy of the default configuration's model files, for tests that damage one."""

from __future__ import annotations

import shutil
from pathlib import Path

from device.engines.model_files import ASR, EMBEDDING, MELSPEC, VAD, WAKE_FILES, voice_files
from device.models.manifest import load_manifest

DEFAULT_FILES = (WAKE_FILES["hey_jarvis"], MELSPEC, EMBEDDING, VAD, ASR, *voice_files("en_US-joe-medium"))
_COPY_BELOW_BYTES = 4_000_000


def copy_models(models_dir: Path, copy: Path) -> Path:
    """The default configuration's files in `copy`: the small ones copied (to damage), the large ones linked
    (never written: only copies are ever damaged)."""
    sizes = {model.path: model.size_bytes for model in load_manifest()}
    for relative in DEFAULT_FILES:
        (copy / relative).parent.mkdir(parents=True, exist_ok=True)
        if sizes[relative] < _COPY_BELOW_BYTES:
            shutil.copyfile(models_dir / relative, copy / relative)
        else:
            (copy / relative).symlink_to((models_dir / relative).resolve())
    return copy


def flip_one_byte(path: Path) -> None:
    """Damage `path` in place, keeping its size (what a bad SD card or an interrupted copy does)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
