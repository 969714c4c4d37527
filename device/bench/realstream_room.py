"""`spine bench realstream`'s processes, each started by the bench and always ended: the private PulseAudio room,
the recorder of its monitor, the tail of Spine's event log, `spine run` itself and the CPU load (stress-ng).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt

from device.bench.realstream_clock import Recording
from device.errors import UserError

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pulse-null-sink.sh"
"""Starts and stops the room (a private PulseAudio with the null sinks)."""


@contextmanager
def room_server() -> Iterator[dict[str, str]]:
    """A private PulseAudio with the room, in a fresh runtime directory; stopped afterwards."""
    if shutil.which("pulseaudio") is None or shutil.which("parec") is None:
        raise UserError("pulseaudio and its tools are not installed: run scripts/setup.sh")
    runtime_dir = tempfile.mkdtemp(prefix="spine-rs-")  # short: the socket path must fit 108 bytes

    def script(*arguments: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "SPINE_PULSE_DIR": runtime_dir}
        return subprocess.run(["bash", str(SCRIPT), *arguments], env=env, capture_output=True, text=True,
                              timeout=30, check=False)  # fmt: skip

    try:
        started = script("start", "--room")
        if started.returncode != 0:
            raise UserError(f"could not start the PulseAudio room ({SCRIPT.name}): {started.stderr.strip()}")
        yield {
            "PULSE_SERVER": f"unix:{runtime_dir}/pulse/native",
            "PULSE_RUNTIME_PATH": f"{runtime_dir}/pulse",
            "XDG_RUNTIME_DIR": runtime_dir,
        }
    finally:
        script("stop")
        shutil.rmtree(runtime_dir, ignore_errors=True)


class Recorder:
    """`parec` of the room's monitor, stereo 16 kHz, read by a thread; the position is the room's clock."""

    def __init__(self, env: dict[str, str]) -> None:
        self._process = subprocess.Popen(
            ["parec", "-d", "spine_room.monitor", "--rate=16000", "--channels=2", "--format=s16le", "--raw",
             "--latency-msec=20"],
            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._data = bytearray()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="recorder", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        fd = self._process.stdout.fileno()
        while chunk := os.read(fd, 6400):
            with self._lock:
                self._data += chunk

    def position(self) -> int:
        with self._lock:
            return len(self._data) // 4

    def left(self, start: int) -> npt.NDArray[np.int16]:
        with self._lock:
            raw = bytes(self._data[max(start, 0) * 4 : len(self._data) // 4 * 4])
        return np.frombuffer(raw, dtype="<i2").reshape(-1, 2)[:, 0].astype(np.int16)

    def stop(self) -> Recording:
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._thread.join(timeout=5)
        with self._lock:
            raw = bytes(self._data[: len(self._data) // 4 * 4])
        return np.frombuffer(raw, dtype="<i2").reshape(-1, 2).astype(np.int16)


class LogTail:
    """The state Spine's event log last reached, read incrementally while it runs."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self.state = "Idle"  # the machine's first state; it logs nothing until its first event

    def poll(self) -> str:
        if not self._path.exists():
            return self.state
        with self._path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            if b'"state"' in line:
                self.state = str(json.loads(line)["state"])
        return self.state


@contextmanager
def spine_run(config: Path, log: Path, stderr_path: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """`spine run` in its own process group; yields once it says it is running, SIGTERM (then SIGKILL) after."""
    with stderr_path.open("w", encoding="utf-8") as stderr:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "device", "run", "--config", str(config), "--log", str(log)],
            env={**os.environ, **env, "OMP_WAIT_POLICY": "PASSIVE"}, stdout=subprocess.PIPE, stderr=stderr,
            text=True, start_new_session=True,
        )  # fmt: skip
        try:
            assert daemon.stdout is not None
            if "running" not in daemon.stdout.readline():
                raise UserError(f"spine run did not start; its stderr is in {stderr_path}")
            yield daemon
        finally:
            if daemon.poll() is None:
                stop_daemon(daemon)


def start_spine_run(run_toml: Path, out: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str | None]:
    """`spine run --config run_toml` in the room `env` names, its event log and stderr in `out`, returned once it
    says it runs, with its monitor's address if it serves one."""
    daemon = subprocess.Popen(
        [sys.executable, "-m", "device", "run", "--config", str(run_toml), "--log", str(out / "events.jsonl")],
        env={**os.environ, **env, "OMP_WAIT_POLICY": "PASSIVE"}, stdout=subprocess.PIPE,
        stderr=(out / "stderr.txt").open("w"), text=True, start_new_session=True,
    )  # fmt: skip
    assert daemon.stdout is not None
    base = None
    for line in daemon.stdout:
        found = re.search(r"monitor on (http://127\.0\.0\.1:\d+)/", line)
        base = found.group(1) if found else base
        if "running" in line:
            break
    if daemon.poll() is not None:
        raise UserError(f"spine run did not start: {(out / 'stderr.txt').read_text()[-500:]}")
    threading.Thread(target=daemon.stdout.read, daemon=True).start()  # keep its pipe from filling
    return daemon, base


def stop_daemon(daemon: subprocess.Popen[str], grace_s: float = 20.0) -> None:
    """SIGTERM, as systemd stops it; a daemon still running `grace_s` later is killed."""
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()


@contextmanager
def cpu_load(on: bool, bound_s: float) -> Iterator[None]:
    """`stress-ng --cpu 2` for at most `bound_s` (its own timeout), killed on the way out whatever happened."""
    if not on:
        yield
        return
    if shutil.which("stress-ng") is None:
        raise UserError("stress-ng is not installed: run scripts/setup.sh (or apt-get install stress-ng)")
    load = subprocess.Popen(
        ["stress-ng", "--cpu", "2", "--timeout", f"{max(1, round(bound_s))}s", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have ended on its own timeout
            os.killpg(load.pid, signal.SIGKILL)  # its own group: stress-ng and the workers it forked
        load.wait()
