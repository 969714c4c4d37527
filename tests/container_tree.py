"""What the booted-container tests share: a Debian tree booted with systemd-nspawn, entered with nsenter.

Used by tests/test_service_container.py (Spine as a service from an offline bundle),
tests/test_bundle_offline_debs.py (the bundle's Debian packages on a Lite-like tree) and
tests/test_flash_firstboot_container.py (a flashed Pi's first boot). Here: whether this host can run them, where
the mmdebstrap trees are cached and the Debian 12 tree the service and first-boot tests boot, making a bundle,
the stand-in sound server (a system-mode PulseAudio with a null sink: a container has no sound card), the nspawn
command, waiting for a boot, powering off, installing from the bundle, and `Container`, which runs commands inside.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CACHE = Path("/var/cache/spine-test")
"""Where the mmdebstrap trees are kept between runs (each keyed on its recipe); never booted themselves."""
MIRROR = "http://deb.debian.org/debian"
SERVICE_SUITE = "bookworm"
# What a Raspberry Pi OS Lite image has that matters here (systemd, D-Bus, Python with venv), the runtime
# packages scripts/install wants (so it needs no network), and a sound server to stand in for a sound card.
SERVICE_PACKAGES = (
    "systemd,systemd-sysv,dbus,python3,python3-venv,libportaudio2,libasound2-plugins,pulseaudio,alsa-utils,procps"
)
INSIDE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BOOT_TIMEOUT_S = 300
"""Raised from 120 s after a loaded fresh-clone run where the Debian 13 container reached its login prompt but never
said running. The cause was `leader_of` entering a boot job that had gone, not a slow boot; the margin stays, as it
costs only when booting is slow."""

PULSE_SYSTEM_PA = """\
# Spine's container test: one null sink, 16 kHz mono; its monitor is the default source.
load-module module-native-protocol-unix auth-anonymous=1
load-module module-null-sink sink_name=spine_null rate=16000 channels=1 norewinds=1
set-default-sink spine_null
set-default-source spine_null.monitor
"""
PULSE_UNIT = """\
[Unit]
Description=PulseAudio in system mode (Spine's container test: a null sink instead of a sound card)
Before=spine.service
[Service]
ExecStart=/usr/bin/pulseaudio --system --daemonize=no --disallow-exit --exit-idle-time=-1 --log-target=journal
[Install]
WantedBy=multi-user.target
"""
WATCHDOG_IN_TEST_S = 5
SPINE_DROP_IN = f"""\
# The test's sound server and a watchdog short enough to wait for.
[Unit]
Requires=pulseaudio.service
[Service]
SupplementaryGroups=pulse-access
Environment=PULSE_SERVER=unix:/run/pulse/native
WatchdogSec={WATCHDOG_IN_TEST_S}
"""
SPINE_CONFIG = '[audio]\ninput_device = "pulse"\noutput_device = "pulse"\n'


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    tick = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        tick.wait(0.5)  # polls a real system on a real clock; the condition is the proof, not the wait


def why_not_runnable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (systemd-nspawn and mmdebstrap); CI runs as root"
    for tool, package in (("systemd-nspawn", "systemd-container"), ("mmdebstrap", "mmdebstrap")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed: apt install {package} (scripts/setup.sh does)"
    return None


def cached_service_tree() -> Path:
    """The Debian 12 tree for SERVICE_PACKAGES (the service and first-boot tests boot it), made once (~1 min) and
    kept; never booted itself."""
    key = hashlib.sha256(f"{SERVICE_SUITE} {MIRROR} {SERVICE_PACKAGES}".encode()).hexdigest()[:12]
    tree = CACHE / f"root-{SERVICE_SUITE}-{key}"
    if not (tree / "etc" / "os-release").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = CACHE / f"{tree.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        made = subprocess.run(
            ["mmdebstrap", "--variant=minbase", f"--include={SERVICE_PACKAGES}", SERVICE_SUITE, str(partial), MIRROR],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if made.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            pytest.fail(f"mmdebstrap failed: {made.stderr[-2000:]}")
        partial.rename(tree)
    return tree


def make_bundle(out: Path, *release: str) -> None:
    """scripts/bundle for this machine's architecture and `release` (e.g. "--release", "bookworm"), into `out`."""
    made = subprocess.run(
        [str(REPO / "scripts" / "bundle"), *release, "--arch", os.uname().machine, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert made.returncode == 0, made.stderr[-3000:]


@dataclass
class Container:
    """A booted container; `run` executes a command inside it (nsenter into its namespaces)."""

    process: subprocess.Popen[bytes]
    leader_pid: int
    console_log: Path

    def run(self, command: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        enter = ["nsenter", "-t", str(self.leader_pid), "-a", "env", "-i", f"PATH={INSIDE_PATH}", "LANG=C.UTF-8"]
        return subprocess.run(
            [*enter, "bash", "-c", command],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    def check(self, command: str, timeout_s: float = 60) -> str:
        result = self.run(command, timeout_s)
        assert result.returncode == 0, f"{command}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def show(self, *properties: str) -> dict[str, str]:
        out = self.check("systemctl show spine.service " + " ".join(f"-p {name}" for name in properties))
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def leader_of(nspawn_pid: int) -> int | None:
    """The container's init: the descendant of nspawn that is PID 1 in its own PID namespace, or None before it
    exists. Not a position in the tree: nspawn's outer child forks init and exits, and init is nspawn's child from
    then on, so "a grandchild of nspawn" was one of init's children. That was a short-lived boot job often enough
    on a loaded machine, and every later command entered a process that had gone (the trixie container "never
    finished booting" in two full loaded runs while its console showed the login prompt)."""
    generation = [nspawn_pid]
    for _ in range(2):  # init is nspawn's grandchild until the outer child exits, its child after
        generation = [child for parent in generation for child in pids_with_parent(parent)]
        for pid in generation:
            if is_namespace_init(pid):
                return pid
    return None


def is_namespace_init(pid: int) -> bool:
    """Whether `pid` is PID 1 of a PID namespace nested in ours (the last field of its NSpid line is 1)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # gone since it was listed
        return False
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            pids = line.split()[1:]
            return len(pids) >= 2 and pids[-1] == "1"
    return False


def pids_with_parent(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children")
    try:
        return [int(pid) for pid in children.read_text().split()]
    except OSError:  # gone since it was listed
        return []


def add_pulse_stand_in(root: Path, spine_drop_in: str) -> Path:
    """The null-sink PulseAudio, started before spine.service, and `spine_drop_in` as spine.service's drop-in;
    returns the tree's /etc/systemd/system."""
    (root / "etc" / "pulse" / "system.pa").write_text(PULSE_SYSTEM_PA)
    units = root / "etc" / "systemd" / "system"
    (units / "pulseaudio.service").write_text(PULSE_UNIT)
    (units / "multi-user.target.wants").mkdir(exist_ok=True)
    (units / "multi-user.target.wants" / "pulseaudio.service").symlink_to("/etc/systemd/system/pulseaudio.service")
    (units / "spine.service.d").mkdir()
    (units / "spine.service.d" / "test.conf").write_text(spine_drop_in)
    return units


def prepare_service_tree(root: Path, bundle: Path) -> None:
    """The bundle in /root, the sound stand-in with SPINE_DROP_IN, and /etc/spine/spine.toml (SPINE_CONFIG)
    written before the install (which keeps it)."""
    shutil.copy(bundle, root / "root" / "bundle.tar")
    add_pulse_stand_in(root, SPINE_DROP_IN)
    (root / "etc" / "spine").mkdir()
    (root / "etc" / "spine" / "spine.toml").write_text(SPINE_CONFIG)


def nspawn(
    root: Path, console_log: Path, machine: str, kernel_words: list[str] | None = None
) -> subprocess.Popen[bytes]:
    """Boot `root`, its console written to `console_log`; `kernel_words`: the kernel command line systemd sees."""
    # --register=no --keep-unit: no machined or D-Bus needed on the host (a CI runner's PID 1 may not be
    # systemd); --private-network: the container's only link is loopback.
    command = ["systemd-nspawn", "-D", str(root), "--boot", "--register=no", "--keep-unit", "--private-network"]
    command += ["--console=read-only", f"--machine={machine}"]
    if kernel_words is not None:
        command += ["--", *kernel_words]
    with console_log.open("wb") as console:
        return subprocess.Popen(POWER_OFF_WITH_US + command, stdout=console, stderr=subprocess.STDOUT)


POWER_OFF_WITH_US = ["setpriv", "--pdeathsig", "TERM"]
"""nspawn gets SIGTERM (and powers the container off) when the test process dies: a run stopped by a signal or a
timeout never reaches `power_off`, and its container used to stay up, loading the machine and slowing the next
run's boots past their timeout. setpriv (util-linux, essential in Debian) sets it and execs nspawn."""


def power_off(process: subprocess.Popen[bytes]) -> None:
    process.terminate()  # nspawn asks the container's init to power off
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def booted(root: Path, console_log: Path, machine: str) -> Iterator[Container]:
    """`root` booted until its systemd has finished booting, powered off at the end."""
    process = nspawn(root, console_log, machine)
    try:
        yield boot(process, console_log)
    finally:
        power_off(process)


def boot(process: subprocess.Popen[bytes], console_log: Path) -> Container:
    """Waits until the container's systemd has finished booting; skips with its console when it cannot boot."""
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    tick = threading.Event()
    container: Container | None = None
    state = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.skip(f"systemd-nspawn cannot boot a container here: {console_log.read_text()[-1500:]}")
        if container is None:
            leader = leader_of(process.pid)
            container = None if leader is None else Container(process, leader, console_log)
        if container is not None:
            state = container.run("systemctl is-system-running").stdout.strip()
            if state in ("running", "degraded"):
                return container
        tick.wait(0.5)
    # Seen twice beside other heavy work: the console reached the login prompt but the state never said running.
    # What systemd still waited for is what the next reader needs.
    waiting = container.run("systemctl list-jobs --no-pager").stdout[-1500:] if container is not None else "-"
    pytest.fail(
        f"the container did not finish booting in {BOOT_TIMEOUT_S} s (systemctl is-system-running: "
        f"{state if container is not None else 'no container'!r}; jobs still queued:\n{waiting}): "
        f"{console_log.read_text()[-1500:]}"
    )


def install_from_the_bundle(container: Container) -> str:
    """scripts/install from /root/bundle.tar, offline; returns what it printed (with the journal's end if it fails)."""
    container.check("tar -C /root -xf /root/bundle.tar spine-bundle/scripts")
    result = container.run("/root/spine-bundle/scripts/install --bundle /root/bundle.tar 2>&1", timeout_s=600)
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{container.run('journalctl -b --no-pager -n 80').stdout}"
    return result.stdout
