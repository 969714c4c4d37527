"""Spine installed as a service in a booted Debian 12 container, from an offline bundle, with no network.

A minimal Debian tree (mmdebstrap, from the Debian registry; cached in /var/cache/spine-test, keyed on its
package list) is copied and booted with systemd-nspawn. Inside, scripts/install installs an x86_64 bundle made
by scripts/bundle; the container's only network is loopback, so the install proves it needs none. There is no
sound card: a system-mode PulseAudio with a null sink stands in, and /etc/spine/spine.toml, written before the
install (which keeps it), points Spine's input and output at the ALSA `pulse` device. Then: the service
reaches READY and says its state in `systemctl status`, its lines are in the journal, a SIGSTOP freezes it
and the watchdog (shortened to 5 s by a drop-in) restarts it, and `systemctl stop` ends it with
Result=success. Root only (CI runs as root); skipped, with the reason, where nspawn cannot boot a container.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CACHE = Path("/var/cache/spine-test")
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# What a Raspberry Pi OS Lite image has that matters here (systemd, D-Bus, Python with venv), the runtime
# packages scripts/install wants (so it needs no network), and a sound server to stand in for a sound card.
PACKAGES = (
    "systemd,systemd-sysv,dbus,python3,python3-venv,libportaudio2,libasound2-plugins,pulseaudio,alsa-utils,procps"
)
WATCHDOG_IN_TEST_S = 5
CAP_SYS_RESOURCE = 24
INSIDE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

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


def cached_tree() -> Path:
    """The debootstrapped tree for PACKAGES, made once (~1 min) and kept; never booted itself."""
    key = hashlib.sha256(f"{SUITE} {MIRROR} {PACKAGES}".encode()).hexdigest()[:12]
    tree = CACHE / f"root-{SUITE}-{key}"
    if not (tree / "etc" / "os-release").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = CACHE / f"{tree.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        made = subprocess.run(
            ["mmdebstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE, str(partial), MIRROR],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if made.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            pytest.fail(f"mmdebstrap failed: {made.stderr[-2000:]}")
        partial.rename(tree)
    return tree


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
    """The container's init: nspawn forks once (the outer child) and that forks init."""
    for pid in pids_with_parent(nspawn_pid):
        for grandchild in pids_with_parent(pid):
            return grandchild
    return None


def pids_with_parent(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


@pytest.fixture(scope="module")
def container(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    reason = why_not_runnable()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("service-container")
    bundle = work / "bundle.tar"
    made = subprocess.run(
        [str(REPO / "scripts" / "bundle"), "--release", SUITE, "--arch", os.uname().machine, "--out", str(bundle)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    root = Path("/var/tmp") / f"spine-container-{os.getpid()}"  # not /tmp: it may be a small tmpfs
    subprocess.run(["cp", "-a", "--reflink=auto", str(cached_tree()), str(root)], check=True)
    try:
        prepare_tree(root, bundle)
        console_log = work / "console.log"
        # --register=no --keep-unit: no machined or D-Bus needed on the host (a CI runner's PID 1 may not be
        # systemd); --private-network: the container's only link is loopback.
        nspawn = ["systemd-nspawn", "-D", str(root), "--boot", "--register=no", "--keep-unit", "--private-network"]
        with console_log.open("wb") as console:
            process = subprocess.Popen(
                [*nspawn, "--console=read-only", f"--machine=spine-test-{os.getpid()}"],
                stdout=console,
                stderr=subprocess.STDOUT,
            )
        try:
            booted = boot(process, console_log)
            yield booted
        finally:
            process.terminate()  # nspawn asks the container's init to power off
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def prepare_tree(root: Path, bundle: Path) -> None:
    shutil.copy(bundle, root / "root" / "bundle.tar")
    (root / "etc" / "pulse" / "system.pa").write_text(PULSE_SYSTEM_PA)
    units = root / "etc" / "systemd" / "system"
    (units / "pulseaudio.service").write_text(PULSE_UNIT)
    (units / "multi-user.target.wants").mkdir(exist_ok=True)
    (units / "multi-user.target.wants" / "pulseaudio.service").symlink_to("/etc/systemd/system/pulseaudio.service")
    (units / "spine.service.d").mkdir()
    (units / "spine.service.d" / "test.conf").write_text(SPINE_DROP_IN)
    (root / "etc" / "spine").mkdir()
    (root / "etc" / "spine" / "spine.toml").write_text(SPINE_CONFIG)


def boot(process: subprocess.Popen[bytes], console_log: Path) -> Container:
    """Waits until the container's systemd has finished booting; skips with its console when it cannot boot."""
    deadline = time.monotonic() + 120
    tick = threading.Event()
    container: Container | None = None
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
    pytest.fail(f"the container did not finish booting in 120 s: {console_log.read_text()[-1500:]}")


@pytest.fixture(scope="module")
def installed(container: Container) -> str:
    """scripts/install from the bundle, offline; returns what it printed."""
    container.check("tar -C /root -xf /root/bundle.tar spine-bundle/scripts")
    result = container.run("/root/spine-bundle/scripts/install --bundle /root/bundle.tar 2>&1", timeout_s=600)
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{container.run('journalctl -b --no-pager -n 80').stdout}"
    return result.stdout


def test_the_container_has_no_network_but_loopback(container: Container) -> None:
    links = container.check("ls /sys/class/net").split()
    assert links == ["lo"]


def test_install_from_the_bundle_reaches_ready(container: Container, installed: str) -> None:
    assert "/etc/spine/spine.toml exists: left as it is" in installed
    shown = container.show("ActiveState", "SubState", "StatusText", "Type", "User")
    assert (shown["ActiveState"], shown["SubState"]) == ("active", "running"), shown
    assert shown["StatusText"], "the daemon sent no STATUS="
    assert shown["User"] == "spine"
    # The administrator's command sees the service's models.
    assert "models in /var/lib/spine/models" in container.check("spine models list")
    status = container.run("systemctl status --no-pager spine.service").stdout
    assert f'Status: "{shown["StatusText"]}"' in status, status


def test_a_second_install_changes_nothing(container: Container, installed: str) -> None:
    before = container.show("MainPID", "NRestarts")
    again = container.run("/root/spine-bundle/scripts/install --bundle /root/bundle.tar 2>&1", timeout_s=300)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "already installed" in again.stdout and "already running, unchanged" in again.stdout, again.stdout
    assert container.show("MainPID", "NRestarts") == before


def test_the_service_logs_to_the_journal(container: Container, installed: str) -> None:
    journal = container.check("journalctl -u spine.service --no-pager -o cat")
    assert "running" in journal, journal[-2000:]
    # A transition goes to the journal itself (JOURNAL_STREAM names its stderr), with the state as a field.
    container.check("systemctl kill -s SIGUSR1 spine.service")  # mute: Idle -> Muted
    muted = "journalctl -u spine.service --no-pager -o cat STATE=Muted"
    wait_for(lambda: bool(container.check(muted).strip()), 30, "a journal line with STATE=Muted")
    container.check("systemctl kill -s SIGUSR2 spine.service")  # unmute
    wait_for(lambda: container.show("StatusText")["StatusText"] == "Idle", 30, "STATUS=Idle again")


def host_allows_rtprio() -> bool:
    """Whether the container's systemd can grant LimitRTPRIO: the hard limit it inherits is above 0, or it may
    raise it (CAP_SYS_RESOURCE). Some CI sandboxes give neither (hard limit 0, CAP_SYS_RESOURCE dropped)."""
    hard = resource.getrlimit(resource.RLIMIT_RTPRIO)[1]
    effective = int(Path("/proc/self/status").read_text().split("CapEff:")[1].split()[0], 16)
    return hard != 0 or bool(effective & (1 << CAP_SYS_RESOURCE))


def test_the_sandbox_is_applied(container: Container, installed: str) -> None:
    pid = container.show("MainPID")["MainPID"]
    status = container.check(f"cat /proc/{pid}/status")
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["CapEff"].strip() == "0000000000000000"
    assert fields["Seccomp"].strip() == "2"
    assert "audio" in container.check("id -Gn spine").split()
    # Every thread but the sound card's callback runs SCHED_OTHER (TS); that one is FIFO (FF) when allowed.
    classes = container.check(f"ps -L -o cls= -p {pid}").split()
    journal = container.check("journalctl -u spine.service --no-pager -o cat")
    if host_allows_rtprio():
        assert "Max realtime priority     10" in container.check(f"cat /proc/{pid}/limits")
        assert classes.count("FF") == 1, classes
    else:  # the refusal path: logged once, and the daemon runs on (it is READY above)
        assert set(classes) == {"TS"}, classes
        assert "SCHED_FIFO refused" in journal, journal[-2000:]


def test_a_frozen_daemon_is_restarted_by_the_watchdog(container: Container, installed: str) -> None:
    before = container.show("MainPID", "NRestarts")
    container.check("systemctl kill -s SIGSTOP spine.service")  # every thread stops: no more WATCHDOG=1
    wait_for(
        lambda: container.show("NRestarts")["NRestarts"] == str(int(before["NRestarts"]) + 1),
        WATCHDOG_IN_TEST_S + 60,
        "the watchdog to restart spine",
    )
    journal = container.check("journalctl -u spine.service --no-pager -o cat")
    assert "Watchdog timeout" in journal, journal[-2000:]
    wait_for(lambda: container.show("ActiveState")["ActiveState"] == "active", 200, "spine to be READY again")
    assert container.show("MainPID")["MainPID"] != before["MainPID"]


def test_stop_is_clean_and_the_event_log_complete(container: Container, installed: str) -> None:
    wait_for(lambda: container.show("ActiveState")["ActiveState"] == "active", 200, "spine to be active")
    container.check("systemctl stop spine.service", timeout_s=60)
    shown = container.show("ActiveState", "Result", "ExecMainStatus")
    assert shown == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}, shown
    newest = container.check("ls -t /var/lib/spine/events-*.jsonl | head -1").strip()
    last = json.loads(container.check(f"grep '\"event\"' {newest} | tail -1"))
    assert last["event"]["type"] == "StopRequested"


def test_uninstall_keeps_config_and_data_and_purge_removes_them(container: Container, installed: str) -> None:
    container.check("/root/spine-bundle/scripts/uninstall")
    gone = "test -e /opt/spine || test -e /etc/systemd/system/spine.service || test -e /usr/local/bin/spine"
    assert container.run(gone).returncode == 1
    container.check("test -f /etc/spine/spine.toml && test -d /var/lib/spine/models")
    container.check("/root/spine-bundle/scripts/uninstall --purge")
    assert container.run("test -e /etc/spine || test -e /var/lib/spine || id spine").returncode == 1
