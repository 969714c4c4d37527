"""What listening costs while nobody talks: `spine run` idle on a silent microphone, next to the peers' loop
(device/bench/idle_reference.py: openWakeWord alone, then openWakeWord + Silero) over the same model files and the
same microphone, in one run, one after the other in the same private PulseAudio room.

Per process, measured from /proc after it is listening and has settled: CPU as a share of one core (user + system
time over the wall time of the window), resident memory (VmRSS) at the end, its peak so far (VmHWM), proportional
set size (Pss: shared libraries split between the processes that map them), and each thread's CPU share, by name
(Spine names its threads: the FSM thread, the audio callback, the workers).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from device.bench.realstream_room import room_server, start_spine_run, stop_daemon
from device.config import Config
from device.engines.model_files import verified_model_paths
from device.errors import UserError

SETTLE_S = 10.0
"""After a process says it listens: its first seconds still warm caches, fill windows and (Spine) play the
start-up sound."""
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessCost:
    cpu_percent_of_core: float
    rss_mb: float
    peak_rss_mb: float
    pss_mb: float
    threads_percent_of_core: dict[str, float] = field(default_factory=dict)
    """Each thread name's CPU share (threads of one name added up), busiest first; the shares add up to the
    process's, give or take threads that ended within the window."""


def _ticks(stat_text: str) -> int:
    """utime + stime from a /proc/.../stat line (fields after the parenthesised name)."""
    fields = stat_text.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _threads(pid: int) -> dict[str, int]:
    """CPU ticks per thread name."""
    ticks: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            ticks[name] = ticks.get(name, 0) + _ticks((task / "stat").read_text())
        except (FileNotFoundError, ProcessLookupError):  # the thread ended meanwhile
            continue
    return ticks


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (its peak) and Pss of a process, in kB."""
    values: dict[str, int] = {}
    for name in ("status", "smaps_rollup"):
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Pss") and rest.strip().endswith("kB"):
                values[key] = int(rest.split()[0])
    return values


def measure(pid: int, seconds: float) -> ProcessCost:
    """The process's cost over the next `seconds` (it must keep running)."""
    before_ticks, before_threads, began = _ticks(Path(f"/proc/{pid}/stat").read_text()), _threads(pid), time.monotonic()
    time.sleep(seconds)
    after_ticks, after_threads = _ticks(Path(f"/proc/{pid}/stat").read_text()), _threads(pid)
    wall_s = time.monotonic() - began
    memory = memory_kb(pid)

    def percent(ticks: int) -> float:
        return round(100.0 * ticks / CLOCK_TICKS_PER_S / wall_s, 2)

    threads = {name: percent(ticks - before_threads.get(name, 0)) for name, ticks in after_threads.items()}
    return ProcessCost(
        cpu_percent_of_core=percent(after_ticks - before_ticks),
        rss_mb=round(memory["VmRSS"] / 1024, 1),
        peak_rss_mb=round(memory["VmHWM"] / 1024, 1),
        pss_mb=round(memory.get("Pss", 0) / 1024, 1),
        threads_percent_of_core=dict(sorted(((n, p) for n, p in threads.items() if p > 0), key=lambda t: -t[1])),
    )


def _reference(config: Config, env: dict[str, str], vad: bool, seconds: float) -> ProcessCost:
    paths = verified_model_paths(config)
    command = [sys.executable, "-m", "device.bench.idle_reference", str(paths.melspec), str(paths.embedding),
               str(paths.wake_head)] + (["--vad", str(paths.vad)] if vad else [])  # fmt: skip
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)  # fmt: skip
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "listening":
            raise UserError(f"the openWakeWord reference loop did not start: {process.communicate()[1][-500:]}")
        time.sleep(SETTLE_S)
        return measure(process.pid, seconds)
    finally:
        stop_daemon(process, grace_s=5.0)


def _spine(config_toml: str, env: dict[str, str], seconds: float) -> ProcessCost:
    with tempfile.TemporaryDirectory(prefix="spine-bench-idle-") as tmp:
        out = Path(tmp)
        run_toml = out / "run.toml"
        run_toml.write_text(
            config_toml + '\n[audio]\ninput_device = "pulse"\noutput_device = "pulse"\ncard_rate_hz = 48000\n',
            encoding="utf-8",
        )
        daemon, _ = start_spine_run(run_toml, out, env)
        try:
            time.sleep(SETTLE_S)
            return measure(daemon.pid, seconds)
        finally:
            stop_daemon(daemon)


def bench_idle(config: Config, config_toml: str, seconds: float, say: Any = print) -> dict[str, Any]:
    """Spine, openWakeWord, openWakeWord + Silero: each listening `seconds` on the room's silent microphone.
    `config_toml`: the text `config` was read from (without [audio]), for `spine run`."""
    with room_server() as env:
        say(f"idle: spine run listening, {seconds:g} s after {SETTLE_S:g} s to settle ...")
        spine = _spine(config_toml, env, seconds)
        say(f"idle: openWakeWord's own loop, {seconds:g} s ...")
        oww = _reference(config, env, vad=False, seconds=seconds)
        say(f"idle: openWakeWord + Silero VAD, {seconds:g} s ...")
        oww_vad = _reference(config, env, vad=True, seconds=seconds)
    load = Path("/proc/loadavg").read_text().split()[0]

    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 2) if b > 0 else None

    return {
        "seconds": seconds,
        "load_average_1min": float(load),
        "spine": asdict(spine),
        "openwakeword": asdict(oww),
        "openwakeword_silero": asdict(oww_vad),
        "cpu_ratio_to_openwakeword": ratio(spine.cpu_percent_of_core, oww.cpu_percent_of_core),
        "cpu_ratio_to_openwakeword_silero": ratio(spine.cpu_percent_of_core, oww_vad.cpu_percent_of_core),
        "rss_ratio_to_openwakeword_silero": ratio(spine.rss_mb, oww_vad.rss_mb),
    }
