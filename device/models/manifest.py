"""The model manifest (`models/manifest.toml`): the files Spine needs, their sources, and how to check them.

The manifest lives in the repository next to the package, not inside it, so that it stays one reviewable file
for people and tools; the package is installed editable (`pip install -e .`), so `<package>/../models` is the
checkout's `models/` in both cases.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from device.errors import UserError


def _manifest_path() -> Path:
    """models/manifest.toml beside the package in a source tree (an editable install), else where a wheel puts it:
    <prefix>/share/spine/manifest.toml (pyproject.toml's data-files)."""
    in_tree = Path(__file__).resolve().parents[2] / "models" / "manifest.toml"
    return in_tree if in_tree.exists() else Path(sys.prefix) / "share" / "spine" / "manifest.toml"


MANIFEST_PATH = _manifest_path()

FETCH_HINT = "run `spine models fetch` (or `spine models fetch --mirror DIR` for a local mirror)"

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ModelFile:
    """One file from the manifest. `sha256` holds every accepted digest (lower-case hex)."""

    name: str
    path: str
    url: str
    sha256: tuple[str, ...]
    size_bytes: int
    licence: str
    required: bool


def load_manifest(manifest_path: Path = MANIFEST_PATH) -> tuple[ModelFile, ...]:
    """Read and validate the manifest; a malformed one is a UserError naming the entry."""
    try:
        with manifest_path.open("rb") as f:
            document = tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"model manifest {manifest_path} is missing; reinstall Spine from its checkout") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"model manifest is not valid TOML: {exc}", where=str(manifest_path)) from None
    entries = document.get("model")
    if not isinstance(entries, list) or not entries:
        raise UserError("model manifest has no [[model]] entries", where=str(manifest_path))
    models = tuple(_parse_entry(entry, index, manifest_path) for index, entry in enumerate(entries))
    _check_unique(models, manifest_path)
    return models


def _parse_entry(entry: Any, index: int, manifest_path: Path) -> ModelFile:
    where = f"{manifest_path}: [[model]] #{index + 1}"
    if not isinstance(entry, dict):
        raise UserError("entry is not a table", where=where)
    expected_types: dict[str, type] = {
        "name": str,
        "path": str,
        "url": str,
        "sha256": list,
        "size_bytes": int,
        "licence": str,
        "required": bool,
    }
    for key, expected_type in expected_types.items():
        # bool is a subclass of int, so `size_bytes = true` must be rejected explicitly.
        value = entry.get(key)
        if not isinstance(value, expected_type) or (expected_type is int and isinstance(value, bool)):
            raise UserError(f"`{key}` must be a {expected_type.__name__}", where=where)
    digests = tuple(entry["sha256"])
    if not digests or not all(isinstance(d, str) and _SHA256_HEX.fullmatch(d) for d in digests):
        raise UserError("`sha256` must be a non-empty list of 64 lower-case hex digits", where=where)
    _check_relative_path(entry["path"], where)
    return ModelFile(
        name=entry["name"],
        path=entry["path"],
        url=entry["url"],
        sha256=digests,
        size_bytes=entry["size_bytes"],
        licence=entry["licence"],
        required=entry["required"],
    )


def _check_relative_path(path: str, where: str) -> None:
    # The path is joined onto the models directory (and a mirror), so it must not be able to escape it.
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or ".." in parts or "\\" in path:
        raise UserError(f"`path` {path!r} must be a relative path inside the models directory", where=where)


def _check_unique(models: tuple[ModelFile, ...], manifest_path: Path) -> None:
    for attribute in ("name", "path"):
        values = [getattr(model, attribute) for model in models]
        duplicates = sorted({value for value in values if values.count(value) > 1})
        if duplicates:
            raise UserError(f"duplicate {attribute}: {', '.join(duplicates)}", where=str(manifest_path))


def default_models_dir() -> Path:
    """`$SPINE_MODELS_DIR`, else `$XDG_DATA_HOME/spine/models`, else `~/.local/share/spine/models`."""
    explicit = os.environ.get("SPINE_MODELS_DIR")
    if explicit:
        return Path(explicit).expanduser()
    # The XDG spec says to ignore an empty or relative XDG_DATA_HOME.
    xdg_data_home = os.environ.get("XDG_DATA_HOME")
    if xdg_data_home and Path(xdg_data_home).is_absolute():
        return Path(xdg_data_home) / "spine" / "models"
    return Path.home() / ".local" / "share" / "spine" / "models"


def require_model(models_dir: Path, relative_path: str) -> Path:
    """Return the installed model file, or raise a UserError saying how to fetch it.

    Checks existence and size only (cheap, for tools that only need the file there); start-up checks every
    byte as well, hashing each file once (device/models/integrity.py).
    """
    model = _manifest_entry(relative_path)
    path = models_dir / model.path
    try:
        size_bytes = path.stat().st_size
    except FileNotFoundError:
        raise UserError(f"model file {path} is missing; {FETCH_HINT}") from None
    if size_bytes != model.size_bytes:
        raise UserError(f"model file {path} has {size_bytes} bytes, expected {model.size_bytes}; {FETCH_HINT}")
    return path


def _manifest_entry(relative_path: str) -> ModelFile:
    for model in load_manifest():
        if model.path == relative_path:
            return model
    # A caller asking for a file the manifest does not list is a bug in Spine, not something a user can fix.
    raise ValueError(f"{relative_path!r} is not in the model manifest {MANIFEST_PATH}")
