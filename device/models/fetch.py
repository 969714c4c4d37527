"""Fetch model files from their upstream URLs or from a local mirror, verifying every byte by sha256.

A file only ever appears at its destination after its digest has been checked: it is written to a temporary
file in the same directory and renamed over the destination (`os.replace`, atomic on one file system).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Collection, Iterable, Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, TextIO

import requests
from tqdm import tqdm

from device.errors import UserError
from device.models.integrity import CHUNK_BYTES, sha256_file
from device.models.manifest import ModelFile, load_manifest

# (connect, read) timeouts: a stalled hub should fail with a message, not hang a device's setup forever.
HTTP_TIMEOUT_S = (15.0, 60.0)
MIRROR_SUMS_NAME = "SHA256SUMS"


class Status(StrEnum):
    VERIFIED = "verified"
    MISSING = "missing"
    WRONG_SIZE = "wrong size"
    CHECKSUM_MISMATCH = "checksum mismatch"


def file_status(models_dir: Path, model: ModelFile) -> Status:
    """Check an installed file against the manifest (size first: it is free and catches truncation)."""
    path = models_dir / model.path
    try:
        size_bytes = path.stat().st_size
    except FileNotFoundError:
        return Status.MISSING
    if size_bytes != model.size_bytes:
        return Status.WRONG_SIZE
    return Status.VERIFIED if sha256_file(path) in model.sha256 else Status.CHECKSUM_MISMATCH


def fetch(
    models_dir: Path,
    mirror: Path | None,
    include_optional: bool,
    progress: bool,
    manifest: Sequence[ModelFile] | None = None,
    out: TextIO | None = None,
) -> None:
    """Install the manifest's files into `models_dir`, skipping those already present and verified.

    `mirror` is a directory with the same layout as `models_dir` plus a `SHA256SUMS`; without one, files are
    downloaded from their URLs. `manifest` defaults to `models/manifest.toml` (tests pass their own).
    """
    out = sys.stdout if out is None else out
    models = [m for m in (load_manifest() if manifest is None else manifest) if m.required or include_optional]
    mirror_sums = read_sha256sums(mirror) if mirror is not None else None
    source = f"mirror {mirror}" if mirror is not None else "upstream"
    print(f"fetching {len(models)} model files from {source} into {models_dir}", file=out)
    for model in models:
        print(_fetch_one(model, models_dir, mirror, mirror_sums, progress), file=out)


def _fetch_one(
    model: ModelFile,
    models_dir: Path,
    mirror: Path | None,
    mirror_sums: dict[str, str] | None,
    progress: bool,
) -> str:
    """Install one file unless it is already verified; returns the line to print for it."""
    status = file_status(models_dir, model)
    if status is Status.VERIFIED:
        return f"ok          {model.path}"
    destination = models_dir / model.path
    destination.parent.mkdir(parents=True, exist_ok=True)
    if mirror is not None and mirror_sums is not None:
        _copy_from_mirror(model, mirror, mirror_sums, destination, progress)
        verb = "copied"
    else:
        _download(model, destination, progress)
        verb = "downloaded"
    replaced = f", replaced a file with {status}" if status is not Status.MISSING else ""
    return f"{verb:<11} {model.path} ({human_size(model.size_bytes)}{replaced})"


def read_sha256sums(mirror: Path) -> dict[str, str]:
    """Parse `<mirror>/SHA256SUMS` (sha256sum's output format) into {relative path: digest}."""
    sums_path = mirror / MIRROR_SUMS_NAME
    if not mirror.is_dir():
        raise UserError(f"mirror directory {mirror} does not exist")
    try:
        lines = sums_path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(
            f"mirror {mirror} has no {MIRROR_SUMS_NAME}; a mirror needs one (make it with `cd {mirror} && "
            f"find . -type f ! -name {MIRROR_SUMS_NAME} -exec sha256sum {{}} + > {MIRROR_SUMS_NAME}`)"
        ) from None
    sums: dict[str, str] = {}
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        digest, _, name = line.partition(" ")
        # sha256sum writes "<hex>  <name>" (text mode) or "<hex> *<name>" (binary mode).
        name = name[1:] if name[:1] in (" ", "*") else name
        if len(digest) != 64 or not name:
            raise UserError("expected `<sha256>  <relative path>`", where=f"{sums_path}:{line_number}")
        sums[name.removeprefix("./")] = digest.lower()
    return sums


def _copy_from_mirror(
    model: ModelFile, mirror: Path, mirror_sums: dict[str, str], destination: Path, progress: bool
) -> None:
    mirror_digest = mirror_sums.get(model.path)
    if mirror_digest is None:
        raise UserError(f"mirror {mirror} does not list {model.path} in its {MIRROR_SUMS_NAME}")
    # The mirror's digest must be one the manifest accepts; then one comparison against it checks both.
    if mirror_digest not in model.sha256:
        raise UserError(
            f"mirror's {MIRROR_SUMS_NAME} gives {model.path} sha256 {mirror_digest}, but the manifest "
            f"accepts only {' or '.join(model.sha256)}; refusing it"
        )
    source = mirror / model.path
    try:
        with source.open("rb") as f:
            _install_verified(destination, _read_chunks(f), (mirror_digest,), model, progress)
    except FileNotFoundError:
        raise UserError(f"mirror {mirror} lists {model.path} but does not have the file") from None


def _read_chunks(f: BinaryIO) -> Iterator[bytes]:
    while chunk := f.read(CHUNK_BYTES):
        yield chunk


def _download(model: ModelFile, destination: Path, progress: bool) -> None:
    try:
        with requests.get(model.url, stream=True, timeout=HTTP_TIMEOUT_S) as response:
            response.raise_for_status()
            chunks = response.iter_content(chunk_size=CHUNK_BYTES)
            _install_verified(destination, chunks, model.sha256, model, progress)
    except requests.RequestException as exc:
        raise UserError(
            f"downloading {model.url} failed ({exc}); check the network, or copy the models from a local "
            "mirror with `spine models fetch --mirror DIR`"
        ) from None


def _install_verified(
    destination: Path,
    chunks: Iterable[bytes],
    accepted: Collection[str],
    model: ModelFile,
    progress: bool,
) -> None:
    """Write `chunks` next to `destination`, and rename it into place only if its sha256 is accepted."""
    descriptor, temporary_name = tempfile.mkstemp(
        dir=destination.parent, prefix=f".{destination.name}.", suffix=".part"
    )
    temporary = Path(temporary_name)
    try:
        actual = _write_hashing(descriptor, chunks, model, progress)
        if actual not in accepted:
            raise UserError(
                f"{model.path}: checksum mismatch (expected sha256 {' or '.join(accepted)}, got {actual}); "
                "the file was refused and not installed"
            )
        # mkstemp creates the file 0600; models are read by the daemon, which may run as another user.
        temporary.chmod(0o644)
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)


def _write_hashing(descriptor: int, chunks: Iterable[bytes], model: ModelFile, progress: bool) -> str:
    digest = hashlib.sha256()
    # The bar goes to stderr so stdout keeps one line per file; it is noise when stderr is not a terminal.
    enabled = progress and sys.stderr.isatty()
    with (
        os.fdopen(descriptor, "wb") as f,
        tqdm(
            total=model.size_bytes,
            desc=model.path,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            disable=not enabled,
            leave=False,
        ) as bar,
    ):
        for chunk in chunks:
            f.write(chunk)
            digest.update(chunk)
            bar.update(len(chunk))
        # fsync before the rename, so a power cut cannot leave a renamed but empty model file.
        f.flush()
        os.fsync(f.fileno())
    return digest.hexdigest()


def human_size(size_bytes: int) -> str:
    size = float(size_bytes)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
