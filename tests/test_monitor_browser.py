"""The monitor end to end: `spine demo --clock wall --monitor` runs the default scene (wake, a story, a barge-in)
while Debian's Chromium (headless, driven by Playwright) opens the page, completes WebRTC, sees the live state
change and events arrive, plays the audio tracks, is refused a control with the read-only token, and downloads
the event log, which `spine replay` accepts. Without the token the page is 401.

Set SPINE_MONITOR_SHOTS=DIR to also save screenshots there and the measured numbers as DIR/monitor.json.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device.monitor.token import load_or_create_tokens

CHROMIUM = Path("/usr/bin/chromium")
SPINE = Path(sys.executable).parent / "spine"
HOLD_S = 25  # the monitor stays up this long after the scene, for the download
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/setup.sh installs it)"),
]
playwright_sync = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    config = tmp_path / "spine.toml"
    config.write_text(f'[monitor]\nstate_dir = "{tmp_path / "state"}"\nport = 0\n')
    process = subprocess.Popen(
        [str(SPINE), "demo", "--clock", "wall", "--monitor", "--monitor-hold-s", str(HOLD_S),
         "--config", str(config), "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    base = None
    for line in process.stdout:
        found = re.search(r"monitor on (http://127\.0\.0\.1:\d+)/", line)
        if found:
            base = found.group(1)
            break
    assert base is not None, "the demo never said where the monitor listens"
    yield base, tmp_path, process
    process.kill()
    process.wait()


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def test_chromium_watches_a_scene_live_and_its_downloaded_log_replays(
    demo: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    base, tmp_path, process = demo
    shots = Path(os.environ["SPINE_MONITOR_SHOTS"]) if os.environ.get("SPINE_MONITOR_SHOTS") else None
    assert status_of(base + "/") == 401 and status_of(base + "/log") == 401
    tokens = load_or_create_tokens(tmp_path / "state")
    with playwright_sync.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--autoplay-policy=no-user-gesture-required"]
        )
        page = browser.new_page(viewport={"width": 1180, "height": 900}, accept_downloads=True)
        page.goto(f"{base}/login#{tokens.read_only}")
        page.wait_for_url(base + "/")
        page.wait_for_function("window.spineMonitor.connectMs !== null", timeout=20000)
        page.click("#listen")
        page.wait_for_function("window.spineMonitor.state === 'Speaking'", timeout=60000)
        page.wait_for_function("document.querySelector('#state-Speaking.live') !== null")
        page.wait_for_timeout(2500)  # let the story play a while: the meters and the reply fill
        if shots:
            page.screenshot(path=str(shots / "monitor.png"))
        page.wait_for_function("window.spineMonitor.state === 'Hearing'", timeout=60000)  # the barge-in
        page.evaluate("window.spineMonitor.control({type: 'mute', muted: true})")
        page.wait_for_function("window.spineMonitor.controlResults.length > 0")
        refusal: dict[str, Any] = page.evaluate("window.spineMonitor.controlResults[0]")
        assert refusal["ok"] is False and "read-only" in refusal["error"]
        packets: list[int] = page.evaluate(
            """async () => {
                 const stats = await window.spineMonitor.pc.getStats(); const out = [];
                 stats.forEach((s) => s.type === 'inbound-rtp' && s.kind === 'audio' && out.push(s.packetsReceived));
                 return out; }"""
        )
        assert len(packets) == 2 and min(packets) > 0, packets
        page.wait_for_function("window.spineMonitor.state === 'Idle' && window.spineMonitor.steps > 40", timeout=90000)
        if shots:
            page.locator("#timeline").evaluate("list => list.scrollTop = list.scrollHeight")
            page.screenshot(path=str(shots / "monitor-after.png"))
        seen: dict[str, Any] = page.evaluate(
            "({steps: window.spineMonitor.steps, levels: window.spineMonitor.levels, "
            "connectMs: window.spineMonitor.connectMs, latenciesMs: window.spineMonitor.latenciesMs, "
            "timeline: document.querySelectorAll('#timeline li').length, "
            "bargeIns: document.querySelectorAll('#timeline li.bargein').length})"
        )
        assert seen["levels"] > 20 and seen["timeline"] >= seen["steps"] > 40
        assert seen["bargeIns"] >= 2  # the cut marked at the onset and again at the silence
        with page.expect_download() as download:
            page.click("#download")
        log = tmp_path / "downloaded.jsonl"
        download.value.save_as(log)
        browser.close()
    replay = subprocess.run([str(SPINE), "replay", str(log)], capture_output=True, text=True, check=False)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    latencies = seen["latenciesMs"]
    numbers = {
        "connect_ms": round(seen["connectMs"], 1),
        "transition_to_browser_ms_p50": round(statistics.median(latencies), 2),
        "transition_to_browser_ms_p95": round(percentile(latencies, 0.95), 2),
        "steps_received": seen["steps"],
        "metrics": monitor_metrics(base),
    }
    print(json.dumps(numbers))
    if shots:
        (shots / "monitor.json").write_text(json.dumps(numbers, indent=2) + "\n")
    process.kill()


def monitor_metrics(base: str) -> dict[str, float]:
    with urllib.request.urlopen(base + "/metrics") as answer:  # loopback: no token by default
        text = answer.read().decode()
    wanted = ("spine_monitor_thread_cpu_seconds_total", "spine_monitor_fsm_thread_seconds_total",
              "spine_process_cpu_seconds_total", "spine_xruns_total", "spine_barge_ins_total")  # fmt: skip
    return {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line.startswith(wanted)}
