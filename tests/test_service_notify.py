"""A real `spine run` on a private PulseAudio null sink tells a test-owned NOTIFY_SOCKET what systemd would hear:
READY=1, STATUS= on each change of state, WATCHDOG=1 every half interval - and stops pinging within an interval
when the FSM loop freezes or the audio callback stops delivering (SPINE_FAULT), and STOPPING=1 on SIGTERM.

Times are the kernel's: the socket stamps each datagram as it is sent (SO_TIMESTAMP, the wall clock), and the
daemon logs the moment a fault struck on the same clock, so a loaded machine delays neither side of a bound.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

from device.replay import replay
from device.runtime.signals import STOP_BOUND_S
from tests.pulse import pulse_server
from tests.test_run_pulse import log_types, wait_for

pytestmark = pytest.mark.slow

SO_TIMESTAMP = 29  # Linux (asm-generic and x86): a receive timestamp taken as the datagram is queued
START_S = 90  # loading the models on a loaded 2-core machine
SLACK_S = 0.35
"""How late the service thread may run its check beyond its schedule on a loaded machine."""


@dataclass(frozen=True)
class Message:
    sent_s: float  # wall clock, stamped by the kernel as the datagram was queued
    text: str


class NotifySocket:
    """A datagram socket standing in for systemd's notify socket, read on its own thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(str(path))
        self._socket.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
        self._socket.settimeout(0.2)
        self.messages: list[Message] = []
        self._closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                data, ancillary, _flags, _address = self._socket.recvmsg(4096, socket.CMSG_SPACE(16))
            except TimeoutError:
                continue
            stamp = [struct.unpack("qq", cmsg[:16]) for level, kind, cmsg in ancillary if kind == SO_TIMESTAMP]
            sent_s = stamp[0][0] + stamp[0][1] / 1e6 if stamp else time.time()
            self.messages.append(Message(sent_s, data.decode()))

    def close(self) -> None:
        self._closed = True
        self._thread.join()
        self._socket.close()

    def texts(self) -> list[str]:
        return [m.text for m in list(self.messages)]

    def pings(self) -> list[float]:
        return [m.sent_s for m in list(self.messages) if m.text == "WATCHDOG=1"]

    def first(self, predicate: Callable[[str], bool]) -> Message | None:
        return next((m for m in list(self.messages) if predicate(m.text)), None)


@contextmanager
def spine_service(
    tmp_path: Path, models_dir: Path, watchdog_usec: int, fault: str
) -> Iterator[tuple[subprocess.Popen[str], NotifySocket, Path, Path]]:
    """`spine run` under a pretend systemd: (the process, its notify socket, its event log, its stderr file)."""
    notify_dir = tempfile.mkdtemp(prefix="spine-notify-")  # short: a socket path must fit 108 bytes
    notify = NotifySocket(Path(notify_dir) / "notify")
    config = tmp_path / "run.toml"
    config.write_text(f'[models]\ndir = "{models_dir}"\n[audio]\ninput_device = "pulse"\noutput_device = "pulse"\n')
    log, stderr_path = tmp_path / "events.jsonl", tmp_path / "stderr.txt"
    try:
        with pulse_server() as pulse_env, stderr_path.open("w") as stderr:
            env = {
                **os.environ,
                **pulse_env,
                "NOTIFY_SOCKET": str(notify.path),
                "WATCHDOG_USEC": str(watchdog_usec),
                "SPINE_FAULT": fault,
            }
            env.pop("JOURNAL_STREAM", None)
            daemon = subprocess.Popen(
                [sys.executable, "-m", "device", "run", "--config", str(config), "--log", str(log)],
                env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True,
            )  # fmt: skip
            try:
                yield daemon, notify, log, stderr_path
            finally:
                if daemon.poll() is None:
                    daemon.kill()
                    daemon.wait()
    finally:
        notify.close()
        shutil.rmtree(notify_dir, ignore_errors=True)


def wait_ready(daemon: subprocess.Popen[str], notify: NotifySocket, stderr: Path) -> Message:
    wait_for(
        lambda: daemon.poll() is not None or notify.first(lambda t: t.startswith("READY=1")) is not None,
        START_S,
        "READY=1",
    )
    ready = notify.first(lambda t: t.startswith("READY=1"))
    assert ready is not None, f"spine run exited {daemon.returncode}: {stderr.read_text()}"
    return ready


def fault_moment_s(stderr: Path, what: str) -> float:
    """The wall-clock moment the daemon logged for an injected fault (waits for the line)."""
    pattern = re.compile(rf"fault injected \(SPINE_FAULT\): {what} at (\d+\.\d+)")
    wait_for(lambda: pattern.search(stderr.read_text()) is not None, 30, f"the fault line {what!r}")
    found = pattern.search(stderr.read_text())
    assert found is not None
    return float(found.group(1))


def realtime_threads(pid: int) -> list[tuple[int, int]]:
    """(policy, real-time priority) of the process's threads that are not SCHED_OTHER (/proc's stat fields)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        priority, policy = int(fields[37]), int(fields[38])  # fields 40 and 41, counted after the name
        if policy != os.SCHED_OTHER:
            found.append((policy, priority))
    return found


def test_a_frozen_fsm_loop_stops_the_watchdog_within_one_interval(tmp_path: Path, models_dir: Path) -> None:
    interval_s = 0.5  # WATCHDOG_USEC = 1 s: a check and a ping every half of it
    with spine_service(tmp_path, models_dir, 1_000_000, "freeze-fsm-after-s=4") as (daemon, notify, log, stderr):
        ready = wait_ready(daemon, notify, stderr)
        assert ready.text == "READY=1\nSTATUS=Idle"
        wait_for(lambda: len(notify.pings()) >= 2, 10, "two watchdog pings")
        daemon.send_signal(signal.SIGUSR1)  # mute: a change of state, before the freeze
        wait_for(lambda: "STATUS=Muted" in notify.texts(), 10, "STATUS=Muted")
        frozen_s = fault_moment_s(stderr, "the FSM loop freezes")
        wait_for(lambda: time.time() > frozen_s + 4 * interval_s + 1.5, 10, "four intervals after the freeze")
        pings = notify.pings()
        assert daemon.poll() is None  # frozen, not dead: only SIGKILL (or systemd's abort) ends it now
    before = [at for at in pings if ready.sent_s < at <= frozen_s]
    assert len(before) >= 3, before
    gaps = [b - a for a, b in pairwise(before)]
    assert all(interval_s * 0.9 < gap < interval_s + 1.0 for gap in gaps), gaps  # periodic
    # The check just after the freeze may still see the rounds before it; none after that.
    after = [round(at - frozen_s, 3) for at in pings if at > frozen_s]
    print(f"freeze: ping gaps before {[round(g, 3) for g in gaps]} s, pings after the freeze at +{after} s")
    late = [round(at - frozen_s, 3) for at in pings if at > frozen_s + interval_s + SLACK_S]
    assert late == [], f"pings after the FSM loop froze at {frozen_s}: +{late} s"
    said = stderr.read_text()
    assert "watchdog: not pinging systemd: the FSM loop ran no round" in said, said
    assert said.count("watchdog: not pinging systemd") == 1, said  # said once, not at every check
    assert "Muted" in log_types(log) or "MuteChanged" in log_types(log)


def test_a_stalled_audio_callback_stops_the_watchdog_until_the_spine_knows_the_card_is_lost_and_sigterm_sends_stopping(
    tmp_path: Path, models_dir: Path
) -> None:
    interval_s = 0.2  # WATCHDOG_USEC = 0.4 s: the spine's own stall detection (1 s) then spans several checks
    with spine_service(tmp_path, models_dir, 400_000, "stop-audio-callback-after-s=3") as (
        daemon,
        notify,
        log,
        stderr,
    ):
        ready = wait_ready(daemon, notify, stderr)
        wait_for(lambda: len(notify.pings()) >= 3, 10, "three watchdog pings")
        if os.geteuid() == 0:  # root may always ask for SCHED_FIFO; the callback thread got it, quietly
            assert (os.SCHED_FIFO, 10) in realtime_threads(daemon.pid)
        stalled_s = fault_moment_s(stderr, "the audio callback stopped delivering")
        wait_for(lambda: notify.first(lambda t: t.startswith("STATUS=Degraded")) is not None, 15, "STATUS=Degraded")
        degraded = notify.first(lambda t: t.startswith("STATUS=Degraded"))
        assert degraded is not None
        wait_for(lambda: any(at > degraded.sent_s for at in notify.pings()), 10, "pings again while Degraded")
        daemon.send_signal(signal.SIGTERM)
        try:
            code = daemon.wait(timeout=STOP_BOUND_S + 10)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running long after SIGTERM: {stderr.read_text()}") from None
        assert code == 0, stderr.read_text()  # 0: the stop guard (exit 1 after STOP_BOUND_S) never fired
    texts = notify.texts()
    pings = notify.pings()
    assert "STOPPING=1" in texts and texts.index("STOPPING=1") > texts.index(degraded.text)
    assert degraded.text.startswith("STATUS=Degraded: no audio callback for"), degraded.text
    assert len([at for at in pings if ready.sent_s < at <= stalled_s]) >= 3
    # Silent from one check after the stall until the spine itself knew the card was lost (it says so as
    # STATUS=Degraded before any ping that relies on it); its stall detection takes 1 s, five checks.
    around = [round(at - stalled_s, 3) for at in pings if at > stalled_s - 1]
    print(f"stall: pings at +{around} s of the stall, STATUS=Degraded at +{degraded.sent_s - stalled_s:.3f} s")
    silent = [round(at - stalled_s, 3) for at in pings if stalled_s + interval_s + SLACK_S < at < degraded.sent_s]
    assert silent == [], f"pings after the callback stalled at {stalled_s}, before Degraded: +{silent} s"
    assert degraded.sent_s - stalled_s > 0.9  # the window above held several checks
    types = log_types(log)
    assert "AudioDeviceLost" in types and types[-1] == "StopRequested"
    _steps, mismatches = replay(log)
    assert mismatches == []
    said = stderr.read_text()
    assert "watchdog: not pinging systemd: the audio callback delivered no period" in said, said
