"""The offline bundles for a Raspberry Pi (aarch64), built on this machine for both releases (Debian 13 trixie with
CPython 3.13, Debian 12 bookworm with 3.11): what each holds, checked file by file.

They cannot be installed here (no aarch64 machine); tests/test_bundle_offline_debs.py and
tests/test_service_container.py install x86_64 ones, made the same way. This checks what an install on a Pi
would get: every wheel runs on aarch64 with the release's CPython and glibc (or on any platform) and pip
resolves Spine's requirements from them alone, binary only; PyAudio and systemd-python come as Debian's
packages, not as sources; the Debian packages are arm64 (or all) and match their index, and apt, given only
them, installs what the installer asks for on top of the base the bundle assumes a Raspberry Pi OS Lite image
of that release has, with no compiler among them; the models match the manifest; SHA256SUMS covers every file.
Needs PyPI and the Debian mirror (as `make setup` does) and the models.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from device.models.manifest import load_manifest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
RELEASES = {"trixie": ("3.13", 41), "bookworm": ("3.11", 36)}
"""Release -> (its CPython, the minor version of its glibc 2.x)."""
# A Debian package that compiles or only serves compiling: none may be needed on the device.
COMPILER_PACKAGE = re.compile(
    r"^(gcc|g\+\+|cpp|clang|llvm)(-[\d.]+)?$|^(build-essential|make|binutils|pkg-config|pkgconf|libc6-dev)$|-dev$"
)


def runs_on_cpython(python: str, abi: str, version: str) -> bool:
    """Pure Python, built for CPython `version` (3.13), or for the stable ABI (abi3) of one no newer."""
    minor = int(version.split(".")[1])
    tag = f"cp3{minor}"
    if abi == "none":
        return python in ("py3", "py2.py3", tag)
    if abi == "abi3":
        found = re.fullmatch(r"cp3(\d+)", python)
        return found is not None and int(found.group(1)) <= minor
    return python == abi == tag


def runs_on_aarch64(platform: str, glibc_minor: int) -> bool:
    """A wheel platform tag a glibc 2.`glibc_minor` aarch64 system accepts."""
    if platform in ("any", "manylinux2014_aarch64"):
        return True
    found = re.fullmatch(r"manylinux_2_(\d+)_aarch64", platform)
    return found is not None and int(found.group(1)) <= glibc_minor


def test_the_tag_checks_accept_what_they_should_and_nothing_else() -> None:
    assert runs_on_cpython("cp313", "cp313", "3.13") and runs_on_cpython("cp39", "abi3", "3.13")
    assert not runs_on_cpython("cp311", "cp311", "3.13") and not runs_on_cpython("cp313", "abi3", "3.11")
    assert runs_on_aarch64("manylinux_2_41_aarch64", 41) and not runs_on_aarch64("manylinux_2_41_aarch64", 36)
    assert not runs_on_aarch64("manylinux_2_28_x86_64", 41) and not runs_on_aarch64("musllinux_1_2_aarch64", 41)


@pytest.fixture(scope="module", params=list(RELEASES))
def release(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, release: str) -> Path:
    work = tmp_path_factory.mktemp(f"bundle-{release}")
    out = work / f"spine-{release}-aarch64.tar"
    made = subprocess.run(
        [str(REPO / "scripts" / "bundle"), "--release", release, "--arch", "aarch64", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    with tarfile.open(out) as tar:
        tar.extractall(work, filter="data")
    return work / "spine-bundle"


def install_list(name: str) -> list[str]:
    """A one-line bash array of scripts/install (the lists scripts/bundle reads too)."""
    found = re.search(rf"^{name}=\(([^)]*)\)", (REPO / "scripts" / "install").read_text(), re.MULTILINE)
    assert found, f"scripts/install has no {name}=(...) line"
    return found.group(1).split()


def debian_modules() -> dict[str, str]:
    """pip name -> the Debian package that supplies it (DEBIAN_MODULES)."""
    return dict(entry.split(":", 1) for entry in install_list("DEBIAN_MODULES"))


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def stanzas(text: str) -> list[dict[str, str]]:
    """The paragraphs of a Debian control file (Packages, dpkg status), continuation lines dropped."""
    found = []
    for block in text.split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if line[:1] not in " \t" and ":" in line)
        if fields:
            found.append({key: value.strip() for key, value in fields.items()})
    return found


def test_every_wheel_runs_on_a_64_bit_pi(bundle: Path, release: str) -> None:
    python_version, glibc_minor = RELEASES[release]
    wheels = sorted((bundle / "wheels").glob("*.whl"))
    for wheel in wheels:
        python, abi, platforms = wheel.stem.split("-")[-3:]
        assert runs_on_cpython(python, abi, python_version), wheel.name
        assert any(runs_on_aarch64(tag, glibc_minor) for tag in platforms.split(".")), wheel.name
    names = {normalized(wheel.name.split("-")[0]) for wheel in wheels}
    needed_wheels = ("spine", "onnxruntime", "pywhispercpp", "piper-tts", "openwakeword", "livekit", "numpy", "pip")
    for needed in (*needed_wheels, "scipy", "soxr", "aiortc", "av", "scikit-learn"):
        assert needed in names
    assert "tflite-runtime" not in names  # openwakeword comes without it, as scripts/setup.sh installs it
    assert not names & {normalized(name) for name in debian_modules()}  # those come from Debian


def test_pip_resolves_spines_requirements_from_the_wheels_alone(bundle: Path, release: str, tmp_path: Path) -> None:
    python_version, glibc_minor = RELEASES[release]
    assert not (bundle / "sdists").exists()  # nothing is built on the device
    spine = next((bundle / "wheels").glob("spine-*.whl"))
    with zipfile.ZipFile(spine) as wheel:
        metadata = next(name for name in wheel.namelist() if name.endswith(".dist-info/METADATA"))
        requires = [
            line.split(":", 1)[1].strip()
            for line in wheel.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
    from_debian = {normalized(name) for name in debian_modules()}
    wanted = [
        r for r in requires if "extra ==" not in r and normalized(re.split(r"[<>=!~ ;\[]", r)[0]) not in from_debian
    ]
    assert len(wanted) == len([r for r in requires if "extra ==" not in r]) - len(from_debian)
    (tmp_path / "requirements.txt").write_text("\n".join(wanted))
    platforms = [f"--platform=manylinux_2_{minor}_aarch64" for minor in range(17, glibc_minor + 1)]
    resolved = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--no-index",
            "--disable-pip-version-check",
            "--find-links",
            str(bundle / "wheels"),
            "--only-binary=:all:",
            "--platform=manylinux2014_aarch64",
            *platforms,
            f"--python-version={python_version}",
            "--implementation=cp",
            "--target",
            str(tmp_path / "target"),
            "--report",
            str(tmp_path / "report.json"),
            "-r",
            str(tmp_path / "requirements.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resolved.returncode == 0, resolved.stderr[-3000:]
    plan = json.loads((tmp_path / "report.json").read_text())["install"]
    assert plan and all(item["download_info"]["url"].endswith(".whl") for item in plan)


def test_debian_packages_are_arm64_and_match_their_index(bundle: Path) -> None:
    debs = bundle / "debs"
    files = {path.name: path for path in debs.glob("*.deb")}
    index = stanzas((debs / "Packages").read_text())
    assert {entry["Filename"].removeprefix("./") for entry in index} == set(files)
    for entry in index:
        path = files[entry["Filename"].removeprefix("./")]
        assert int(entry["Size"]) == path.stat().st_size, path.name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["SHA256"], path.name
        control = subprocess.run(
            ["dpkg-deb", "-f", str(path), "Package", "Architecture"], capture_output=True, text=True, check=True
        )
        fields = dict(line.split(": ", 1) for line in control.stdout.splitlines())
        assert fields == {"Package": entry["Package"], "Architecture": entry["Architecture"]}
        assert fields["Architecture"] in ("arm64", "all"), path.name
    release = (debs / "Release").read_text()
    packages = debs / "Packages"
    assert f" {hashlib.sha256(packages.read_bytes()).hexdigest()} {packages.stat().st_size} Packages" in release
    names = {entry["Package"] for entry in index}
    assert set(install_list("RUNTIME_PACKAGES")) | set(debian_modules().values()) <= names


def test_apt_installs_the_installers_packages_from_the_bundle_alone_with_no_compiler(
    bundle: Path, tmp_path: Path
) -> None:
    """As the installer's apt does on the device (the bundle's debs/ the only source), on top of what the bundle
    assumes the device has (debs/assumed-status as dpkg's status), for arm64, without this machine's apt state."""
    assumed = {entry["Package"] for entry in stanzas((bundle / "debs" / "assumed-status").read_text())}
    assert {"python3", "systemd", "dbus", "libc6", "apt"} <= assumed  # Lite's base: required, important, and these
    wanted = [*install_list("RUNTIME_PACKAGES"), *debian_modules().values()]
    assert not assumed & {*wanted, "python3-venv"}
    for directory in ("lists/partial", "etc/apt/apt.conf.d", "etc/apt/preferences.d"):
        (tmp_path / directory).mkdir(parents=True)
    (tmp_path / "sources.list").write_text(f"deb [trusted=yes] file:{bundle / 'debs'} ./\n")
    config = tmp_path / "apt.conf"  # APT_CONFIG with its own Dir: this machine's apt.conf.d is not read
    config.write_text(
        f'Dir "{tmp_path}/";\nDir::State::status "{bundle / "debs" / "assumed-status"}";\n'
        f'Dir::Etc::SourceList "{tmp_path}/sources.list";\nDir::State::Lists "{tmp_path}/lists/";\n'
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\nAPT::Architecture "arm64";\n'
        'APT::Architectures { "arm64"; };\nDebug::NoLocking "true";\nAPT::Sandbox::User "root";\n'
    )
    env = {**os.environ, "APT_CONFIG": str(config)}
    subprocess.run(["apt-get", "-qq", "update"], env=env, check=True, capture_output=True)
    simulated = subprocess.run(
        ["apt-get", "-s", "-y", "--no-install-recommends", "install", *wanted], env=env, capture_output=True, text=True
    )
    assert simulated.returncode == 0, simulated.stdout[-3000:] + simulated.stderr[-2000:]
    plan = re.findall(r"^Inst (\S+)", simulated.stdout, re.MULTILINE)
    shipped = {entry["Package"]: entry for entry in stanzas((bundle / "debs" / "Packages").read_text())}
    assert set(wanted) <= set(plan) <= set(shipped)
    upgrades = re.findall(r"^Inst (\S+) \[", simulated.stdout, re.MULTILINE)
    assert not upgrades, upgrades  # an up-to-date base needs none of its packages replaced
    compilers = [name for name in plan if COMPILER_PACKAGE.search(name)]
    assert not compilers, compilers
    # A package tied by `=` to one the device has already (libgomp1 to gcc-12-base) travels with it, so that an
    # image older than the bundle can upgrade them together.
    for name in plan:
        for target, version in re.findall(
            r"([a-z0-9][a-z0-9+.-]*)(?::\S+)? \(= ([^)]+)\)",
            f"{shipped[name].get('Pre-Depends', '')}, {shipped[name].get('Depends', '')}",
        ):
            assert target in plan or shipped.get(target, {}).get("Version") == version, (
                f"{name} needs {target} {version}"
            )


def test_models_match_the_manifest(bundle: Path) -> None:
    for model in load_manifest():
        path = bundle / "models" / model.path
        assert path.is_file(), model.path
        assert hashlib.sha256(path.read_bytes()).hexdigest() in model.sha256, model.path


def test_sha256sums_covers_every_file_and_they_match(bundle: Path, release: str) -> None:
    listed = {}
    for line in (bundle / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name.removeprefix("./")] = digest
    files = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file() and p.name != "SHA256SUMS"}
    files |= {"models/SHA256SUMS"}
    assert set(listed) == files
    checked = subprocess.run(["sha256sum", "--quiet", "--strict", "-c", "SHA256SUMS"], cwd=bundle, check=False)
    assert checked.returncode == 0
    described = (bundle / "BUNDLE").read_text().splitlines()
    python_version, _ = RELEASES[release]
    assert {
        "arch=aarch64",
        "bundle_format=2",
        f"debian={release} arm64",
        f"release={release}",
        f"debian_version={'13' if release == 'trixie' else '12'}",
        f"python_version={python_version}",
    } <= set(described)
