"""The offline bundle for a Raspberry Pi (aarch64), built on this machine: what it holds, checked file by file.

It cannot be installed here (no aarch64 machine); tests/test_service_container.py installs the x86_64 one. This
checks what an install on a Pi would get: every wheel runs on aarch64 CPython 3.11 (or on any platform), the
packages with no such wheel are shipped as source with the build backend to build them offline, the models
match the manifest, and SHA256SUMS covers every file. Needs PyPI (as `make setup` does) and the models.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import tarfile
import tomllib
from pathlib import Path

import pytest

from device.models.manifest import load_manifest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# A wheel's platform tag (the last of its name's fields) that CPython 3.11 on Debian 12 arm64 accepts.
AARCH64_TAG = re.compile(r"(any|manylinux(2014|_2_(1[7-9]|2\d|3[0-6]))_aarch64)")


def runs_on_cpython_311(python: str, abi: str) -> bool:
    """Pure Python, built for 3.11, or for the stable ABI (abi3) of a CPython no newer than 3.11."""
    if abi == "none":
        return python in ("py3", "py2.py3", "cp311")
    if abi == "abi3":
        return re.fullmatch(r"cp3(\d|10|11)", python) is not None
    return python == abi == "cp311"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("bundle")
    out = work / "spine-aarch64.tar"
    made = subprocess.run(
        [str(REPO / "scripts" / "bundle"), "--arch", "aarch64", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    with tarfile.open(out) as tar:
        tar.extractall(work, filter="data")
    return work / "spine-bundle"


def test_every_wheel_runs_on_a_64_bit_pi(bundle: Path) -> None:
    wheels = sorted((bundle / "wheels").glob("*.whl"))
    for wheel in wheels:
        python, abi, platforms = wheel.stem.split("-")[-3:]
        assert runs_on_cpython_311(python, abi), wheel.name
        assert any(AARCH64_TAG.fullmatch(tag) for tag in platforms.split(".")), wheel.name
    names = {wheel.name.split("-")[0].lower() for wheel in wheels}
    for needed in ("spine", "onnxruntime", "pywhispercpp", "piper_tts", "openwakeword", "livekit", "numpy"):
        assert needed in names
    assert "tflite_runtime" not in names  # openwakeword comes without it, as scripts/setup.sh installs it


def test_packages_without_an_aarch64_wheel_come_as_source_with_their_build_backend(bundle: Path) -> None:
    sources = [path.name.lower() for path in (bundle / "sdists").iterdir()]
    assert any(name.startswith("pyaudio-") for name in sources), sources  # PyAudio publishes no Linux wheel
    assert any(wheel.name.startswith("setuptools-") for wheel in (bundle / "wheels").glob("*.whl"))
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    wheel_names = {w.name.split("-")[0].lower().replace("_", "-") for w in (bundle / "wheels").glob("*.whl")}
    for requirement in declared:
        name = re.split(r"[<>=!~ \[]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in wheel_names or any(s.startswith(name) for s in sources), f"{name} is not in the bundle"


def test_models_match_the_manifest(bundle: Path) -> None:
    for model in load_manifest():
        path = bundle / "models" / model.path
        assert path.is_file(), model.path
        assert hashlib.sha256(path.read_bytes()).hexdigest() in model.sha256, model.path


def test_sha256sums_covers_every_file_and_they_match(bundle: Path) -> None:
    listed = {}
    for line in (bundle / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name.removeprefix("./")] = digest
    files = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file() and p.name != "SHA256SUMS"}
    files |= {"models/SHA256SUMS"}
    assert set(listed) == files
    checked = subprocess.run(["sha256sum", "--quiet", "--strict", "-c", "SHA256SUMS"], cwd=bundle, check=False)
    assert checked.returncode == 0
    assert "arch=aarch64" in (bundle / "BUNDLE").read_text().splitlines()
