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

import json
import os
import resource
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.container_tree import (
    SERVICE_SUITE,
    WATCHDOG_IN_TEST_S,
    Container,
    booted,
    cached_service_tree,
    install_from_the_bundle,
    make_bundle,
    prepare_service_tree,
    wait_for,
    why_not_runnable,
)

pytestmark = pytest.mark.slow

CAP_SYS_RESOURCE = 24


@pytest.fixture(scope="module")
def container(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    reason = why_not_runnable()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("service-container")
    bundle = work / "bundle.tar"
    make_bundle(bundle, "--release", SERVICE_SUITE)
    root = Path("/var/tmp") / f"spine-container-{os.getpid()}"  # not /tmp: it may be a small tmpfs
    subprocess.run(["cp", "-a", "--reflink=auto", str(cached_service_tree()), str(root)], check=True)
    try:
        prepare_service_tree(root, bundle)
        with booted(root, work / "console.log", f"spine-test-{os.getpid()}") as container:
            yield container
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def installed(container: Container) -> str:
    """scripts/install from the bundle, offline; returns what it printed."""
    return install_from_the_bundle(container)


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
    with what_the_service_did(container):  # mute goes to Muted from a running state (from Degraded: once restored)
        wait_for(lambda: container.show("StatusText")["StatusText"] == "Idle", 90, "STATUS=Idle before muting")
    container.check("systemctl kill -s SIGUSR1 spine.service")  # mute: Idle -> Muted
    muted = "journalctl -u spine.service --no-pager -o cat STATE=Muted"
    with what_the_service_did(container):
        wait_for(lambda: bool(container.check(muted).strip()), 30, "a journal line with STATE=Muted")
    container.check("systemctl kill -s SIGUSR2 spine.service")  # unmute
    with what_the_service_did(container):
        wait_for(lambda: container.show("StatusText")["StatusText"] == "Idle", 30, "STATUS=Idle again")


@contextmanager
def what_the_service_did(container: Container) -> Iterator[None]:
    """A wait that times out says what the service was doing: its status, restarts and last journal lines (a CI
    run under load once timed out waiting for STATE=Muted, and said no more)."""
    try:
        yield
    except AssertionError as timed_out:
        shown = container.show("ActiveState", "SubState", "StatusText", "MainPID", "NRestarts", "Result")
        journal = container.run("journalctl -u spine.service --no-pager -o short-monotonic -n 60").stdout
        raise AssertionError(f"{timed_out}\nthe service: {shown}\nits journal:\n{journal}") from timed_out


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
