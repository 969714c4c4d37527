"""Start-up's check of the installed model files: every byte against the manifest's sha256, hashed once.

Checking sizes alone let a damaged file of the right size through: a corrupt wake word model left the assistant
deaf with exit 0, a corrupt voice played near-silence. So start-up compares each file's sha256 with the
manifest, as `spine models list` does. Hashing the ~150 MB of models costs a few tenths of a second on x86 (more
on a Pi), so a verified file's stat stamp (size, mtime_ns, ctime_ns) and digest are kept in a small JSON cache in
the state directory; at the next start a file whose stamp is unchanged is served from the cache without reading
it. Rewriting a file changes its mtime and its ctime, and ctime cannot be set back (`touch -d` and `rsync -t` can
set mtime), so a changed file is hashed again. A cache that cannot be read or parsed is ignored and rebuilt; one
that cannot be written costs only the hashing at the next start.

The cache lives in the state directory, not in the models directory: the models may be installed read-only
(`/var/lib/spine/models`) or shared by several users.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from device.errors import UserError
from device.models.manifest import FETCH_HINT, ModelFile, default_models_dir, load_manifest

CHUNK_BYTES = 1 << 20
CACHE_NAME = "verified-models.json"
_CACHE_VERSION = 1

Hasher = Callable[[Path], str]
"""A file's sha256 as lower-case hex (injected by tests to count the files actually read)."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def default_cache_path() -> Path:
    """`$STATE_DIRECTORY` (systemd), else `$XDG_STATE_HOME/spine`, else `~/.local/state/spine`; the logs' home."""
    systemd = os.environ.get("STATE_DIRECTORY")
    if systemd:  # systemd may pass several, separated by colons: the first is the unit's own
        return Path(systemd.split(":")[0]) / CACHE_NAME
    xdg_state_home = os.environ.get("XDG_STATE_HOME")
    if xdg_state_home and Path(xdg_state_home).is_absolute():
        return Path(xdg_state_home) / "spine" / CACHE_NAME
    return Path.home() / ".local" / "state" / "spine" / CACHE_NAME


def fetch_hint(models_dir: Path) -> str:
    """How to (re)install the files into `models_dir`: `--dest` when it is not the default directory."""
    if models_dir == default_models_dir():
        return FETCH_HINT
    return f"run `spine models fetch --dest {models_dir}` (add `--mirror DIR` to copy from a local mirror)"


def check_models_dir(models_dir: Path, named_by: str) -> None:
    """A UserError unless `models_dir` is a directory; `named_by` says where the path came from (a key, a variable)."""
    try:
        is_dir, exists = models_dir.is_dir(), models_dir.exists()
    except OSError as error:  # what they do not take for "not there": a name too long, a directory not searchable
        raise UserError(f"{named_by} {models_dir} cannot be read: {error.strerror}") from None
    if is_dir:
        return
    if exists:
        raise UserError(
            f"{named_by} {models_dir} is a file, not a directory: point it at the directory `spine models fetch` "
            "installed the models into"
        )
    raise UserError(f"{named_by} {models_dir} does not exist: fix the path, or {fetch_hint(models_dir)}")


@dataclass(frozen=True)
class _Stamp:
    size_bytes: int
    mtime_ns: int
    ctime_ns: int


class VerifiedCache:
    """Digests of files already hashed, keyed by absolute path, valid while the file's stamp is unchanged."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, dict[str, object]] = self._read() if path is not None else {}
        self._changed = False

    def _read(self) -> dict[str, dict[str, object]]:
        assert self.path is not None
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # missing, unreadable or garbled: start afresh
            return {}
        if not isinstance(document, dict) or document.get("version") != _CACHE_VERSION:
            return {}
        files = document.get("files")
        if not isinstance(files, dict):
            return {}
        return {key: value for key, value in files.items() if isinstance(value, dict)}

    def digest(self, path: Path, stamp: _Stamp) -> str | None:
        """The cached digest of `path` if it was hashed with this very stamp, else None."""
        entry = self._entries.get(str(path))
        if entry is None or {key: entry.get(key) for key in asdict(stamp)} != asdict(stamp):
            return None
        digest = entry.get("sha256")
        return digest if isinstance(digest, str) else None

    def remember(self, path: Path, stamp: _Stamp, digest: str) -> None:
        self._entries[str(path)] = {**asdict(stamp), "sha256": digest}
        self._changed = True

    def forget(self, path: Path) -> None:
        self._changed |= self._entries.pop(str(path), None) is not None

    def save(self) -> None:
        """Write the cache atomically (a temporary file renamed over it); a failure only loses the speed-up."""
        if self.path is None or not self._changed:
            return
        document = {"version": _CACHE_VERSION, "files": self._entries}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
            with os.fdopen(descriptor, "w", encoding="utf-8") as f:
                json.dump(document, f, indent=1, sort_keys=True)
            os.replace(temporary, self.path)
        except OSError:
            return
        self._changed = False


def verify_model_files(
    models_dir: Path,
    relative_paths: Sequence[str],
    cache: VerifiedCache,
    hasher: Hasher = sha256_file,
    manifest: Sequence[ModelFile] | None = None,
) -> dict[str, Path]:
    """Each manifest file in `relative_paths`, checked present, of its size and of an accepted sha256.

    Returns {relative path: installed path}; the first file that fails is a UserError naming it and the fix.
    Files are hashed only when the cache has no digest for their current stamp.
    """
    entries = {model.path: model for model in (load_manifest() if manifest is None else manifest)}
    installed: dict[str, Path] = {}
    try:
        for relative_path in relative_paths:
            model = entries.get(relative_path)
            if model is None:  # Spine asking for a file its manifest lacks is a bug, not a user's mistake
                raise ValueError(f"{relative_path!r} is not in the model manifest")
            installed[relative_path] = _verify_one(models_dir, model, cache, hasher)
    finally:
        cache.save()  # what was verified before a failure stays verified
    return installed


def _verify_one(models_dir: Path, model: ModelFile, cache: VerifiedCache, hasher: Hasher) -> Path:
    path = (models_dir / model.path).absolute()
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise UserError(f"model file {path} is missing; {fetch_hint(models_dir)}") from None
    except OSError as error:
        raise UserError(f"model file {path} cannot be read ({error.strerror}); {fetch_hint(models_dir)}") from None
    if stat.st_size != model.size_bytes:
        raise UserError(
            f"model file {path} has {stat.st_size} bytes, expected {model.size_bytes}; {fetch_hint(models_dir)}"
        )
    stamp = _Stamp(stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    digest = cache.digest(path, stamp)
    if digest is None:
        try:
            digest = hasher(path)
        except OSError as error:
            raise UserError(f"model file {path} cannot be read ({error.strerror}); {fetch_hint(models_dir)}") from None
        cache.remember(path, stamp, digest)
    if digest not in model.sha256:
        cache.forget(path)
        raise UserError(
            f"model file {path} is damaged (its sha256 {digest} is not the manifest's); replace it: "
            f"{fetch_hint(models_dir)}"
        )
    return path
