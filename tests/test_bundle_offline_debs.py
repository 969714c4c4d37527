"""The bundle's Debian packages: installed offline in a booted Debian container that lacks them, then READY; for
both releases a bundle is made for (Debian 13 trixie and 12 bookworm, each with its own bundle).

A Raspberry Pi flashed with Raspberry Pi OS Lite installs Spine at its first boot from the bundle alone, with no
network: the bundle carries the Debian packages the image may lack (libportaudio2, libasound2-plugins,
python3-pyaudio, python3-systemd and what they need) and pip as a wheel, and the installer's apt reads only the
bundle's debs/. This takes the same path minus the architecture (an x86_64 bundle, amd64 packages): a tree made
as the bundle assumes a Lite image is (mmdebstrap's `important` variant, which is debootstrap's default as
pi-gen uses it, plus python3, systemd, dbus and ca-certificates) and without libportaudio2, libasound2-plugins,
python3-venv, python3-pyaudio, python3-systemd, booted with systemd-nspawn whose only network is loopback.
PulseAudio stands in for a sound card as in tests/test_service_container.py; its Debian package depends on
libasound2-plugins, so the tree gets PulseAudio's other dependencies as packages and its files unpacked without
registering it. The tree is cached in /var/cache/spine-test, keyed on its recipe, and booted as an overlay
whose changes live in a tmpfs (one tree per release, ~70 s to make each the first time). Root only; skipped, with
the reason, where nspawn cannot boot a container.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.container_tree import (
    CACHE,
    MIRROR,
    Container,
    booted,
    install_from_the_bundle,
    make_bundle,
    prepare_service_tree,
    why_not_runnable,
)

pytestmark = pytest.mark.slow

VARIANT = "important"
# What scripts/bundle assumes a Raspberry Pi OS Lite image has beyond Debian's required and important packages.
LITE_PACKAGES = "python3,systemd,systemd-sysv,dbus,ca-certificates"
# What the bundle brings and the tree must not have (python3-venv: the installer makes the venv without it).
BROUGHT_BY_THE_BUNDLE = ("libportaudio2", "libasound2-plugins", "python3-pyaudio", "python3-systemd")
ABSENT = (*BROUGHT_BY_THE_BUNDLE, "python3-venv")
# Run in the new tree by mmdebstrap (with the mirror reachable): PulseAudio without its package's dependency on
# libasound2-plugins; its postinst's users made by hand.
PULSEAUDIO_HOOK = r"""
set -e
deps=$(apt-cache show --no-all-versions pulseaudio | sed -n 's/^\(Pre-\)\{0,1\}Depends: //p' | tr ',' '\n' \
  | sed 's/|.*//; s/(.*//; s/:any//; s/ //g' | grep -vx libasound2-plugins)
apt-get install -y -q --no-install-recommends $deps
cd /tmp
apt-get download -q pulseaudio
dpkg-deb --fsys-tarfile pulseaudio_*.deb | tar -x --keep-directory-symlink -C /
rm pulseaudio_*.deb
groupadd --system pulse
useradd --system --gid pulse --groups audio --home-dir /run/pulse --no-create-home pulse
groupadd --system pulse-access
"""


RELEASES = ("trixie", "bookworm")


def cached_tree(suite: str) -> Path:
    """The tree for this test and release, made once (~70 s) and kept; never booted itself."""
    recipe = f"{suite} {MIRROR} {VARIANT} {LITE_PACKAGES} {PULSEAUDIO_HOOK}"
    tree = CACHE / f"root-{suite}-{VARIANT}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    if not (tree / "etc" / "os-release").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = CACHE / f"{tree.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        hook = CACHE / f"{tree.name}.hook.sh"
        hook.write_text(PULSEAUDIO_HOOK)
        made = subprocess.run(
            [
                "mmdebstrap",
                f"--variant={VARIANT}",
                f"--include={LITE_PACKAGES}",
                f'--customize-hook=cp {hook} "$1/tmp/hook.sh" && chroot "$1" sh /tmp/hook.sh && rm "$1/tmp/hook.sh"',
                suite,
                str(partial),
                MIRROR,
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        hook.unlink()
        if made.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            pytest.fail(f"mmdebstrap failed: {made.stderr[-2000:]}")
        partial.rename(tree)
    return tree


def mount(arguments: list[str]) -> None:
    mounted = subprocess.run(["mount", *arguments], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount here ({mounted.stderr.strip()}): this test boots an overlay of a cached tree")


@contextmanager
def overlay_of(tree: Path, place: Path) -> Iterator[Path]:
    """A writable root that reads from `tree` and writes to a tmpfs, both dropped at the end: no copy of the tree
    before, and no deleting of the gigabyte the install writes after (over 90 s on a loaded disk)."""
    changes, root = place / "changes", place / "root"
    changes.mkdir(parents=True)
    root.mkdir()
    try:
        mount(["-t", "tmpfs", "-o", "size=4g,mode=0755", "spine-test", str(changes)])
        (changes / "upper").mkdir(mode=0o755)
        (changes / "work").mkdir()
        mount(
            [
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={tree},upperdir={changes}/upper,workdir={changes}/work",
                str(root),
            ]
        )
        yield root
    finally:
        for point in (root, changes):  # lazily: a process still inside must not keep them (nor the test) waiting
            subprocess.run(["umount", "--lazy", str(point)], capture_output=True, check=False)
        shutil.rmtree(place)  # two empty directories by now


@pytest.fixture(scope="module", params=RELEASES)
def release(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def container(tmp_path_factory: pytest.TempPathFactory, release: str) -> Iterator[Container]:
    reason = why_not_runnable()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp(f"offline-debs-{release}")
    bundle = work / "bundle.tar"
    make_bundle(bundle, "--release", release)
    with overlay_of(cached_tree(release), Path("/var/tmp") / f"spine-offline-debs-{os.getpid()}") as root:
        assert f"VERSION_CODENAME={release}" in (root / "etc" / "os-release").read_text()
        prepare_service_tree(root, bundle)
        with booted(root, work / "console.log", f"spine-debs-{os.getpid()}") as container:
            yield container


def installed_packages(container: Container, names: tuple[str, ...]) -> set[str]:
    shown = container.run(f"dpkg-query -W -f='${{Package}} ${{Status}}\\n' {' '.join(names)} 2>/dev/null").stdout
    return {line.split()[0] for line in shown.splitlines() if line.endswith(" install ok installed")}


# The bundle less one package its Debian packages need (libjack-jackd2-0, for libportaudio2), its sums remade.
BUNDLE_LACKING_A_PACKAGE = r"""
set -e
rm -rf /root/lacking && mkdir /root/lacking && tar -C /root/lacking -xf /root/bundle.tar
cd /root/lacking/spine-bundle/debs
awk -v RS= -v ORS='\n\n' 'index($0, "Package: libjack-jackd2-0\n") != 1' Packages > Packages.new
mv Packages.new Packages && rm libjack-jackd2-0_*.deb
sum=$(sha256sum < Packages | cut -d' ' -f1)
printf 'Date: %s\nSHA256:\n %s %s Packages\n' "$(date -Ru)" "$sum" "$(stat -c %s Packages)" > Release
cd .. && find . -type f ! -path ./SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > SHA256SUMS
tar -C /root/lacking -cf /root/lacking.tar spine-bundle && rm -rf /root/lacking
"""


def test_a_bundle_lacking_a_package_fails_clearly_and_installs_nothing(container: Container) -> None:
    container.check("tar -C /root -xf /root/bundle.tar spine-bundle/scripts")
    container.check(BUNDLE_LACKING_A_PACKAGE, timeout_s=300)
    failed = container.run("/root/spine-bundle/scripts/install --bundle /root/lacking.tar 2>&1", timeout_s=300)
    container.check("rm /root/lacking.tar")
    assert failed.returncode != 0, failed.stdout[-3000:]
    assert (
        "error: apt could not install libportaudio2 libasound2-plugins python3-pyaudio python3-systemd from the bundle"
        in failed.stdout
    ), failed.stdout[-3000:]
    assert "libjack-jackd2-0" in failed.stdout  # apt's reason, shown
    assert installed_packages(container, ABSENT) == set()  # nothing half-installed


@pytest.fixture(scope="module")
def installed(container: Container) -> str:
    """scripts/install from the bundle, offline, on the tree that lacks the packages; returns what it printed."""
    assert installed_packages(container, ABSENT) == set()  # the premise: none of them is there before
    assert container.check("ls /sys/class/net").split() == ["lo"]
    return install_from_the_bundle(container)


def test_the_debian_packages_come_from_the_bundle_and_the_service_is_ready(
    container: Container, installed: str, release: str
) -> None:
    assert "installing system packages from the bundle (no network)" in installed, installed
    python = {"trixie": "3.13", "bookworm": "3.11"}[release]
    assert container.check("/opt/spine/venv/bin/python -c 'import sys; print(sys.version[:4])'").strip() == python
    assert installed_packages(container, ABSENT) == set(BROUGHT_BY_THE_BUNDLE)  # python3-venv is not needed
    assert container.run("command -v cc gcc").stdout == ""  # nothing was compiled: there is no compiler
    container.check("dpkg --audit && apt-get check -q")  # dpkg's and apt's state is whole
    shown = container.show("ActiveState", "SubState", "StatusText")
    assert (shown["ActiveState"], shown["SubState"]) == ("active", "running"), shown
    assert shown["StatusText"], "the daemon sent no STATUS="


def test_the_venv_sees_debians_modules_and_no_other(container: Container, installed: str) -> None:
    python = "/opt/spine/venv/bin/python"
    files = container.check(f"{python} -c 'import pyaudio, systemd.daemon; print(pyaudio.__file__, systemd.__file__)'")
    resolved = container.check(f"realpath {files}").split()
    assert [path.rsplit("/", 2)[0] for path in resolved] == ["/usr/lib/python3/dist-packages"] * 2, resolved
    # Linked one by one: the rest of Debian's Python packages stays out of the venv.
    path = container.check(f"{python} -c 'import sys; print(*sys.path, sep=chr(10))'").splitlines()
    assert "/usr/lib/python3/dist-packages" not in path, path
    listed = container.check(f"{python} -m pip list --format=freeze --disable-pip-version-check").splitlines()
    assert "PyAudio==0.2.13" in listed and "systemd-python==235" in listed, listed  # pip counts them as installed


def test_a_second_install_installs_no_package(container: Container, installed: str) -> None:
    before = container.show("MainPID", "NRestarts")
    again = container.run("/root/spine-bundle/scripts/install --bundle /root/bundle.tar 2>&1", timeout_s=300)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "[1/7] system packages: all present" in again.stdout, again.stdout
    assert "already running, unchanged" in again.stdout, again.stdout
    assert container.show("MainPID", "NRestarts") == before


# The bundle with another release named in its BUNDLE (its sums remade), as a bundle for the other release says.
BUNDLE_FOR_ANOTHER_RELEASE = r"""
set -e
rm -rf /root/other && mkdir /root/other && tar -C /root/other -xf /root/bundle.tar
cd /root/other/spine-bundle
sed -i "s/^release=.*/release=$OTHER/" BUNDLE
find . -type f ! -path ./SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > SHA256SUMS
tar -C /root/other -cf /root/other.tar spine-bundle && rm -rf /root/other
"""


def test_a_bundle_for_another_release_is_refused_and_installs_nothing(container: Container, release: str) -> None:
    other = next(name for name in RELEASES if name != release)
    container.check("tar -C /root -xf /root/bundle.tar spine-bundle/scripts")
    container.check(f"OTHER={other}\n{BUNDLE_FOR_ANOTHER_RELEASE}", timeout_s=300)
    refused = container.run("/root/spine-bundle/scripts/install --bundle /root/other.tar 2>&1", timeout_s=300)
    container.check("rm /root/other.tar")
    assert refused.returncode != 0, refused.stdout[-3000:]
    assert (
        f"error: the bundle is for Debian {other}, this system is {release}: make one for it with "
        f"scripts/bundle --release {release} (make bundle RELEASE={release})"
    ) in refused.stdout, refused.stdout[-3000:]
    assert "[1/7]" not in refused.stdout  # refused before the first step
