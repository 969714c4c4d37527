"""`spine bench monitor`: what the browser monitor costs the real audio path.

`spine run` on a private PulseAudio room (the real-stream bench's, started here and stopped after) with
`[monitor] enabled = true`, first with no browser for `seconds`, then for as long with a headless Chromium
(Debian's, driven by Playwright) connected and listening to both audio tracks. From `/metrics` at the start and
end of each phase: the card's xruns and underruns, the FSM loop's rounds, their work time and the rounds whose
work took longer than one audio period, the monitor thread's CPU, the FSM thread's time handing records to the
monitor, and the whole process's CPU.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from device.bench.realstream_room import room_server, start_spine_run, stop_daemon
from device.errors import UserError

CHROMIUM = Path("/usr/bin/chromium")
COUNTERS = {
    "xruns": "spine_xruns_total",
    "underrun_samples": "spine_underrun_samples_total",
    "fsm_rounds": "spine_fsm_rounds_total",
    "fsm_work_s": "spine_fsm_work_seconds_total",
    "fsm_rounds_over_budget": "spine_fsm_rounds_over_budget_total",
    "monitor_thread_cpu_s": "spine_monitor_thread_cpu_seconds_total",
    "audio_thread_cpu_s": "spine_audio_thread_cpu_seconds_total",
    "audio_resyncs": "spine_audio_resyncs_total",
    "fsm_to_monitor_s": "spine_monitor_fsm_thread_seconds_total",
    "process_cpu_s": "spine_process_cpu_seconds_total",
}


def bench_monitor(seconds: float, config: Path | None, progress: bool = True) -> dict[str, Any]:
    if not CHROMIUM.exists():
        raise UserError("Debian's chromium is not installed at /usr/bin/chromium (scripts/setup.sh installs it)")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="spine-bench-monitor-") as tmp, room_server() as env:
        out = Path(tmp)
        run_toml = out / "run.toml"
        user = config.read_text(encoding="utf-8") if config else ""
        run_toml.write_text(
            user + f'\n[monitor]\nenabled = true\nport = 0\nstate_dir = "{out / "state"}"\n'
            '\n[audio]\ninput_device = "pulse"\noutput_device = "pulse"\ncard_rate_hz = 48000\n',
            encoding="utf-8",
        )
        daemon, base = start_spine_run(run_toml, out, env)
        if base is None:
            stop_daemon(daemon)
            raise UserError(f"spine run started without its monitor: {(out / 'stderr.txt').read_text()[-500:]}")
        try:
            phases: dict[str, Any] = {}
            _say(progress, f"monitor at {base}; {seconds:g} s with no browser ...")
            phases["no_browser"] = _phase(base, seconds)
            from device.monitor.token import load_or_create_tokens

            tokens = load_or_create_tokens(out / "state")
            with sync_playwright() as driver:
                browser = driver.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=["--autoplay-policy=no-user-gesture-required"]
                )
                page = browser.new_page()
                page.goto(f"{base}/login#{tokens.read_only}")
                page.wait_for_url(base + "/")
                page.wait_for_function("window.spineMonitor.connectMs !== null", timeout=30000)
                page.click("#listen")
                _say(progress, f"{seconds:g} s with Chromium connected, listening to both tracks ...")
                phases["browser"] = _phase(base, seconds)
                packets: list[int] = page.evaluate(
                    """async () => {
                         const stats = await window.spineMonitor.pc.getStats(); const out = [];
                         stats.forEach((s) => s.type === 'inbound-rtp' && s.kind === 'audio'
                                                && out.push(s.packetsReceived));
                         return out; }"""
                )
                phases["browser"]["audio_packets_received"] = packets
                browser.close()
        finally:
            stop_daemon(daemon)
    return {"seconds_per_phase": seconds, "cores": os.cpu_count(), "phases": phases}


def _phase(base: str, seconds: float) -> dict[str, Any]:
    before, began = _metrics(base), time.monotonic()
    time.sleep(seconds)
    after, wall = _metrics(base), time.monotonic() - began
    delta = {name: round(after[key] - before[key], 4) for name, key in COUNTERS.items()}
    rounds = max(1.0, delta["fsm_rounds"])
    return {
        "wall_s": round(wall, 1),
        **delta,
        "fsm_work_ms_mean": round(1000 * delta["fsm_work_s"] / rounds, 3),
        "fsm_work_max_ms_so_far": round(1000 * after["spine_fsm_work_max_seconds"], 2),
        "monitor_thread_core_share": round(delta["monitor_thread_cpu_s"] / wall, 4),
        "process_core_share": round(delta["process_cpu_s"] / wall, 4),
        "fsm_to_monitor_share": round(delta["fsm_to_monitor_s"] / wall, 5),
    }


def _metrics(base: str) -> dict[str, float]:
    with urllib.request.urlopen(base + "/metrics", timeout=10) as answer:  # loopback: no token needed
        text = answer.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line.split(" ")[0]:
            name, value = line.split(" ")[:2]
            out[name] = float(value)
    return out


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, flush=True)


def report_markdown(result: dict[str, Any], command: str) -> str:
    rows = [
        ("xruns (PortAudio over/underflows)", "xruns", "{:.0f}"),
        ("playback underrun samples", "underrun_samples", "{:.0f}"),
        ("FSM rounds", "fsm_rounds", "{:.0f}"),
        ("FSM round work, mean ms", "fsm_work_ms_mean", "{:.3f}"),
        ("FSM round work, max ms (since start)", "fsm_work_max_ms_so_far", "{:.2f}"),
        ("FSM rounds over 10 ms per period heard", "fsm_rounds_over_budget", "{:.0f}"),
        ("monitor thread CPU, s (share of a core)", "monitor_thread_cpu_s", "{:.2f}"),
        ("FSM thread handing records to the monitor, s", "fsm_to_monitor_s", "{:.3f}"),
        ("sound card's callback thread CPU, s", "audio_thread_cpu_s", "{:.2f}"),
        ("stream restarts ending PortAudio's busy loop", "audio_resyncs", "{:.0f}"),
        ("spine process CPU, s", "process_cpu_s", "{:.1f}"),
    ]
    quiet, browser = result["phases"]["no_browser"], result["phases"]["browser"]
    lines = [f"| {result['seconds_per_phase']:g} s of `spine run`, idle | no browser | Chromium listening |",
             "|---|---:|---:|"]  # fmt: skip
    for label, key, form in rows:
        cells = [form.format(phase[key]) for phase in (quiet, browser)]
        if key == "monitor_thread_cpu_s":
            cells = [
                f"{c} ({100 * p['monitor_thread_core_share']:.1f} %)"
                for c, p in zip(cells, (quiet, browser), strict=True)
            ]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + f"\n\nReproduce: `{command}`\n"


def write(result: dict[str, Any], path: Path, command: str) -> None:
    path.write_text(json.dumps({**result, "command": command}, indent=2) + "\n", encoding="utf-8")
