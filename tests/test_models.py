"""The model manifest and `spine models fetch|list`, against the real mirror and a real local HTTP server."""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from device.errors import UserError
from device.models.cli import register
from device.models.fetch import Status, fetch, file_status, read_sha256sums
from device.models.manifest import ModelFile, default_models_dir, load_manifest, require_model

MIRROR = Path(__file__).resolve().parents[1].parent / "shared" / "models"
needs_mirror = pytest.mark.skipif(
    not (MIRROR / "SHA256SUMS").is_file(), reason=f"the shared model mirror {MIRROR} is not present"
)

# Small enough to copy and tamper with cheaply.
SMALL_PATH = "tts/en_US-joe-medium.onnx.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spine")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(*argv: str) -> int:
    args = _parser().parse_args(list(argv))
    result: int = args.func(args)
    return result


def _small_model() -> ModelFile:
    return next(model for model in load_manifest() if model.path == SMALL_PATH)


def _leftovers(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*") if path.is_file()]


# --- the manifest -------------------------------------------------------------------------------------------


def test_manifest_lists_every_file_with_upstream_urls() -> None:
    models = load_manifest()
    assert len(models) == 11
    assert all(model.url.startswith("https://") for model in models)
    optional = {model.path for model in models if not model.required}
    assert optional == {
        "wakeword/alexa_v0.1.onnx",
        "wakeword/hey_mycroft_v0.1.onnx",
        "wakeword/hey_rhasspy_v0.1.onnx",
    }


@needs_mirror
def test_manifest_agrees_with_the_mirror() -> None:
    mirror_sums = read_sha256sums(MIRROR)
    for model in load_manifest():
        assert mirror_sums[model.path] in model.sha256, model.path
        assert (MIRROR / model.path).stat().st_size == model.size_bytes, model.path


def test_manifest_rejects_a_path_escaping_the_models_dir(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(
        '[[model]]\nname = "x"\npath = "../etc/passwd"\nurl = "https://example.invalid/x"\n'
        f'sha256 = ["{"0" * 64}"]\nsize_bytes = 1\nlicence = "MIT"\nrequired = true\n'
    )
    with pytest.raises(UserError, match="relative path inside the models directory"):
        load_manifest(manifest)


def test_default_models_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPINE_MODELS_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_models_dir() == tmp_path / "explicit"
    monkeypatch.delenv("SPINE_MODELS_DIR")
    assert default_models_dir() == tmp_path / "xdg" / "spine" / "models"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_models_dir() == Path.home() / ".local" / "share" / "spine" / "models"


# --- require_model ------------------------------------------------------------------------------------------


def test_require_model_names_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(UserError) as raised:
        require_model(tmp_path, SMALL_PATH)
    message = str(raised.value)
    assert str(tmp_path / SMALL_PATH) in message
    assert "spine models fetch" in message
    assert "\n" not in message


def test_require_model_checks_the_size(tmp_path: Path) -> None:
    model = _small_model()
    path = tmp_path / SMALL_PATH
    path.parent.mkdir(parents=True)
    path.write_bytes(b"{}")
    with pytest.raises(UserError, match=f"has 2 bytes, expected {model.size_bytes}"):
        require_model(tmp_path, SMALL_PATH)
    path.write_bytes(b"x" * model.size_bytes)
    assert require_model(tmp_path, SMALL_PATH) == path


# --- fetching from a mirror ---------------------------------------------------------------------------------


@needs_mirror
def test_fetch_from_the_mirror_then_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "models"
    assert _run("models", "list", "--dest", str(dest)) == 1

    assert _run("models", "fetch", "--mirror", str(MIRROR), "--dest", str(dest)) == 0
    for model in load_manifest():
        expected = Status.VERIFIED if model.required else Status.MISSING
        assert file_status(dest, model) is expected, model.path
        if model.required:
            assert require_model(dest, model.path) == dest / model.path
    capsys.readouterr()
    assert _run("models", "list", "--dest", str(dest)) == 0
    listing = capsys.readouterr().out
    assert "verified" in listing
    assert "3 optional file(s) not verified" in listing

    # A second run verifies what is there and copies only the optional files.
    assert _run("models", "fetch", "--mirror", str(MIRROR), "--dest", str(dest), "--all") == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("ok ") for line in lines) == 8
    assert sum(line.startswith("copied ") for line in lines) == 3
    assert all(file_status(dest, model) is Status.VERIFIED for model in load_manifest())
    assert not [path for path in _leftovers(dest) if path.name.endswith(".part")]


@needs_mirror
def test_list_reports_a_damaged_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _small_model()
    fetch(tmp_path, MIRROR, include_optional=False, progress=False, manifest=[model])
    path = tmp_path / model.path
    _flip_a_byte(path)
    assert file_status(tmp_path, model) is Status.CHECKSUM_MISMATCH
    path.write_bytes(path.read_bytes()[:-1])
    assert file_status(tmp_path, model) is Status.WRONG_SIZE
    # fetch replaces the damaged file with a verified one.
    fetch(tmp_path, MIRROR, include_optional=False, progress=False, manifest=[model])
    assert file_status(tmp_path, model) is Status.VERIFIED
    assert "replaced a file with wrong size" in capsys.readouterr().out


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _tampered_mirror(tmp_path: Path, model: ModelFile, list_tampered_digest: bool) -> tuple[Path, str]:
    """A mirror holding one flipped-byte copy of `model`; returns it and the tampered file's digest."""
    mirror = tmp_path / "mirror"
    (mirror / model.path).parent.mkdir(parents=True)
    shutil.copyfile(MIRROR / model.path, mirror / model.path)
    _flip_a_byte(mirror / model.path)
    tampered = hashlib.sha256((mirror / model.path).read_bytes()).hexdigest()
    listed = tampered if list_tampered_digest else model.sha256[0]
    # Written without the "./" prefix the real mirror uses: both forms are sha256sum output.
    (mirror / "SHA256SUMS").write_text(f"{listed}  {model.path}\n")
    return mirror, tampered


@needs_mirror
def test_a_tampered_mirror_file_is_refused(tmp_path: Path) -> None:
    model = _small_model()
    mirror, tampered = _tampered_mirror(tmp_path, model, list_tampered_digest=False)
    dest = tmp_path / "models"
    with pytest.raises(UserError) as raised:
        fetch(dest, mirror, include_optional=False, progress=False, manifest=[model])
    message = str(raised.value)
    assert model.path in message
    assert model.sha256[0] in message
    assert tampered in message
    assert _leftovers(dest) == []


@needs_mirror
def test_a_mirror_whose_sums_disagree_with_the_manifest_is_refused(tmp_path: Path) -> None:
    model = _small_model()
    mirror, tampered = _tampered_mirror(tmp_path, model, list_tampered_digest=True)
    dest = tmp_path / "models"
    expected = re.escape(f"{model.path} sha256 {tampered}, but the manifest accepts only")
    with pytest.raises(UserError, match=expected):
        fetch(dest, mirror, include_optional=False, progress=False, manifest=[model])
    assert _leftovers(dest) == []


def test_a_mirror_without_sums_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="has no SHA256SUMS"):
        fetch(tmp_path / "models", tmp_path, include_optional=False, progress=False, manifest=[])


# --- downloading --------------------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on 127.0.0.1; yields it and its base URL."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _served_model(root: Path, base_url: str, content: bytes) -> ModelFile:
    (root / "voice.bin").write_bytes(content)
    return ModelFile(
        name="test-voice",
        path="tts/voice.bin",
        url=f"{base_url}/voice.bin",
        sha256=("0" * 64, hashlib.sha256(content).hexdigest()),
        size_bytes=len(content),
        licence="MIT",
        required=True,
    )


def test_download_verifies_and_installs(
    http_root: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, base_url = http_root
    content = bytes(range(256)) * 5000  # 1.28 MB: more than one 1 MiB chunk, so the streaming loop repeats
    model = _served_model(root, base_url, content)
    dest = tmp_path / "models"
    fetch(dest, None, include_optional=False, progress=True, manifest=[model])
    assert (dest / model.path).read_bytes() == content
    assert file_status(dest, model) is Status.VERIFIED
    assert "downloaded  tts/voice.bin" in capsys.readouterr().out

    # Already verified: not downloaded again, even with the server's copy gone.
    (root / "voice.bin").unlink()
    fetch(dest, None, include_optional=False, progress=False, manifest=[model])
    assert capsys.readouterr().out.splitlines()[-1] == "ok          tts/voice.bin"


def test_a_corrupted_download_is_refused(http_root: tuple[Path, str], tmp_path: Path) -> None:
    root, base_url = http_root
    model = _served_model(root, base_url, b"the real model" * 1000)
    _flip_a_byte(root / "voice.bin")
    dest = tmp_path / "models"
    with pytest.raises(UserError, match=re.escape("tts/voice.bin: checksum mismatch")) as raised:
        fetch(dest, None, include_optional=False, progress=False, manifest=[model])
    assert hashlib.sha256((root / "voice.bin").read_bytes()).hexdigest() in str(raised.value)
    assert _leftovers(dest) == []


def test_a_failed_download_names_the_url_and_suggests_a_mirror(http_root: tuple[Path, str], tmp_path: Path) -> None:
    root, base_url = http_root
    model = replace(_served_model(root, base_url, b"x"), url=f"{base_url}/not-there.bin")
    with pytest.raises(UserError) as raised:
        fetch(tmp_path / "models", None, include_optional=False, progress=False, manifest=[model])
    message = str(raised.value)
    assert model.url in message
    assert "--mirror" in message
    assert _leftovers(tmp_path / "models") == []
