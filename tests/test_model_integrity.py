"""Start-up checks every model byte against the manifest, hashing a file once and serving it from a cache after.

Unit tests use a small manifest of their own; the start-up tests use a copy of the real models directory (the
small files copied, the large ones linked: only copies are ever damaged).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from device.cli import main
from device.config import load_config
from device.engines.load import load_engines
from device.engines.model_files import ASR, EMBEDDING, MELSPEC, VAD, WAKE_FILES, verified_model_paths, voice_files
from device.errors import UserError
from device.models.integrity import VerifiedCache, default_cache_path, sha256_file, verify_model_files
from device.models.manifest import ModelFile
from tests.model_copies import copy_models, flip_one_byte


class CountingHasher:
    """sha256_file that remembers which files it read."""

    def __init__(self) -> None:
        self.hashed: list[Path] = []

    def __call__(self, path: Path) -> str:
        self.hashed.append(path)
        return sha256_file(path)


def small_tree(root: Path) -> tuple[Path, list[ModelFile]]:
    """Two model files and their manifest entries."""
    models_dir = root / "models"
    manifest = []
    for name, content in (("a.onnx", b"alpha" * 100), ("sub/b.bin", b"beta" * 300)):
        path = models_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        digest = hashlib.sha256(content).hexdigest()
        manifest.append(ModelFile(name, name, "https://example.invalid", (digest,), len(content), "MIT", True))
    return models_dir, manifest


# --- the cache ------------------------------------------------------------------------------------------------


def test_an_unchanged_tree_is_hashed_once_then_served_from_the_cache_across_restarts(tmp_path: Path) -> None:
    models_dir, manifest = small_tree(tmp_path)
    cache_path = tmp_path / "state" / "verified-models.json"
    paths = [model.path for model in manifest]
    first = CountingHasher()
    installed = verify_model_files(models_dir, paths, VerifiedCache(cache_path), first, manifest)
    assert sorted(first.hashed) == sorted(installed.values())
    assert cache_path.is_file()

    again = CountingHasher()  # a new process: a fresh cache object reads the file
    assert verify_model_files(models_dir, paths, VerifiedCache(cache_path), again, manifest) == installed
    assert again.hashed == []


def test_a_damaged_file_is_refused_even_with_its_old_mtime_restored(tmp_path: Path) -> None:
    models_dir, manifest = small_tree(tmp_path)
    cache_path = tmp_path / "verified-models.json"
    paths = [model.path for model in manifest]
    verify_model_files(models_dir, paths, VerifiedCache(cache_path), sha256_file, manifest)
    damaged = models_dir / "sub/b.bin"
    before = damaged.stat()
    flip_one_byte(damaged)
    os.utime(damaged, ns=(before.st_atime_ns, before.st_mtime_ns))  # ctime still moves: it is hashed again
    hasher = CountingHasher()
    with pytest.raises(UserError) as caught:
        verify_model_files(models_dir, paths, VerifiedCache(cache_path), hasher, manifest)
    assert hasher.hashed == [damaged.absolute()]
    message = str(caught.value)
    assert f"model file {damaged.absolute()} is damaged" in message
    assert f"spine models fetch --dest {models_dir}" in message
    assert "\n" not in message
    # ...and stays refused at the next start: the damaged digest was not cached as verified.
    with pytest.raises(UserError, match="is damaged"):
        verify_model_files(models_dir, paths, VerifiedCache(cache_path), sha256_file, manifest)


@pytest.mark.parametrize("garbage", [b"", b"{not json", b'{"version": 1, "files": []}', b"\xff\xfe", b"[1, 2]"])
def test_an_unreadable_cache_is_ignored_and_rebuilt(tmp_path: Path, garbage: bytes) -> None:
    models_dir, manifest = small_tree(tmp_path)
    cache_path = tmp_path / "verified-models.json"
    cache_path.write_bytes(garbage)
    hasher = CountingHasher()
    verify_model_files(models_dir, [m.path for m in manifest], VerifiedCache(cache_path), hasher, manifest)
    assert len(hasher.hashed) == 2
    rebuilt = CountingHasher()
    verify_model_files(models_dir, [m.path for m in manifest], VerifiedCache(cache_path), rebuilt, manifest)
    assert rebuilt.hashed == []


def test_a_cache_that_cannot_be_written_costs_only_the_hashing(tmp_path: Path) -> None:
    models_dir, manifest = small_tree(tmp_path)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    cache = VerifiedCache(blocker / "verified-models.json")
    for _ in range(2):
        hasher = CountingHasher()
        verify_model_files(models_dir, [m.path for m in manifest], cache, hasher, manifest)
    assert len(hasher.hashed) == 0  # the same process still remembers; a restart would hash again


def test_the_cache_lives_in_the_state_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path}/unit:{tmp_path}/other")
    assert default_cache_path() == tmp_path / "unit" / "verified-models.json"
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == tmp_path / "xdg" / "spine" / "verified-models.json"


# --- start-up (`spine run` and `spine demo` load the engines through load_engines) ----------------------------


@pytest.fixture
def models_copy(models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    return copy_models(models_dir, tmp_path / "models")


def config_file(tmp_path: Path, models: Path) -> Path:
    path = tmp_path / "spine.toml"
    path.write_text(f'[models]\ndir = "{models}"\n', encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "damaged", [WAKE_FILES["hey_jarvis"], MELSPEC, EMBEDDING, VAD, voice_files("en_US-joe-medium")[1]]
)
def test_start_up_refuses_a_damaged_model_of_the_right_size(models_copy: Path, tmp_path: Path, damaged: str) -> None:
    config = load_config(config_file(tmp_path, models_copy))
    verified_model_paths(config)  # verified and cached while intact...
    flip_one_byte(models_copy / damaged)
    with pytest.raises(UserError) as caught:
        load_engines(config)  # ...refused once damaged, before any engine loads
    message = str(caught.value)
    assert message.startswith(f"model file {(models_copy / damaged).absolute()} is damaged")
    assert f"spine models fetch --dest {models_copy}" in message


@pytest.mark.parametrize("truncated", [VAD, ASR, voice_files("en_US-joe-medium")[0]])
def test_start_up_refuses_a_truncated_model_naming_its_size_and_the_fix(
    models_copy: Path, tmp_path: Path, truncated: str
) -> None:
    # An interrupted copy or download: the first megabyte of the file (of a large model, the link to the mirror's
    # file is replaced by the truncated copy) in its place.
    path = models_copy / truncated
    head = path.read_bytes()[: 1 << 20] if path.stat().st_size > 1 << 20 else path.read_bytes()[:-1000]
    expected = path.stat().st_size
    path.unlink()
    path.write_bytes(head)
    with pytest.raises(UserError) as caught:
        load_engines(load_config(config_file(tmp_path, models_copy)))
    message = str(caught.value)
    assert f"model file {path.absolute()} has {len(head)} bytes, expected {expected}" in message
    assert f"spine models fetch --dest {models_copy}" in message


def test_spine_demo_exits_2_with_one_line_naming_the_damaged_file(
    models_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flip_one_byte(models_copy / MELSPEC)
    code = main(["demo", "--config", str(config_file(tmp_path, models_copy)), "--out", str(tmp_path / "out")])
    _out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith(f"spine: error: model file {(models_copy / MELSPEC).absolute()} is damaged")
    assert err.count("\n") == 1
    assert not (tmp_path / "out" / "events.jsonl").exists()


def test_start_up_verifies_the_real_files_once_then_reads_the_cache(models_copy: Path, tmp_path: Path) -> None:
    config = load_config(config_file(tmp_path, models_copy))
    cache_path = tmp_path / "cache.json"
    first = CountingHasher()
    verified_model_paths(config, VerifiedCache(cache_path), first)
    assert len(first.hashed) == 7
    second = CountingHasher()
    paths = verified_model_paths(config, VerifiedCache(cache_path), second)
    assert second.hashed == []
    assert paths.melspec == (models_copy / MELSPEC).absolute()


def test_a_models_directory_from_the_environment_that_is_a_file_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_dir = tmp_path / "models"
    not_a_dir.write_text("")
    monkeypatch.setenv("SPINE_MODELS_DIR", str(not_a_dir))
    with pytest.raises(UserError) as caught:
        verified_model_paths(load_config(None))
    assert str(caught.value) == (
        f"$SPINE_MODELS_DIR {not_a_dir} is a file, not a directory: point it at the directory `spine models fetch` "
        "installed the models into"
    )
