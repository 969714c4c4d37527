"""`spine bench edge --short` (the CI setting of the edge bench, device/bench/edge.py) runs every part for real:
`spine run` idle on a private PulseAudio room next to openWakeWord's own loop, two echo-suite scenes through Spine
and through pipecat (its own venv: $SPINE_PEER_VENV or out/peer-venv, made once), the latency scene's first two
questions per backend, the components and the scaling; and writes the report, its JSON and both plots. The figures
of the short setting mean little; what they must say is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_the_short_edge_bench_measures_every_part_and_writes_its_report(tmp_path: Path, models_dir: Path) -> None:
    report = tmp_path / "bench" / "edge.md"
    done = subprocess.run(
        [sys.executable, "-m", "device", "bench", "edge", "--short", "--report", str(report), "--out",
         str(tmp_path / "out")],
        cwd=ROOT, env={**os.environ, "SPINE_MODELS_DIR": str(models_dir)}, capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads(report.with_suffix(".json").read_text(encoding="utf-8"))
    assert (report.parent / "idle.png").stat().st_size > 10_000
    assert (report.parent / "interruption.png").stat().st_size > 10_000
    idle = document["idle"]
    for process in ("spine", "openwakeword", "openwakeword_silero"):
        assert 0.1 < idle[process]["cpu_percent_of_core"] < 100.0, idle
        assert 50.0 < idle[process]["rss_mb"] < 2000.0, idle
    # The peers' loop runs a subset of what Spine runs on the same audio: it cannot cost more.
    assert idle["openwakeword"]["cpu_percent_of_core"] <= idle["spine"]["cpu_percent_of_core"]
    cut = document["interruption"]
    assert cut["scenes"] == ["cold_0.3s_1_stop_drift", "only_cold_02_e+0_d100"]
    # The talk-over ("Stop." 0.3 s into the first answer) is honoured by Spine, and nothing else cut an answer;
    # pipecat on the raw mic (its default: no canceller) cuts the echo-only story on its own echo at 0 dB.
    assert cut["spine"]["talk_overs"] == 1 and cut["spine"]["missed"] == 0
    assert cut["spine"]["false_barge_ins"] == 0
    assert cut["raw"]["false_barge_ins"] > 0 and cut["raw"]["answers_falsely_cut"] >= 1
    assert cut["floor_ms"]["total_ms"] == 42.0
    for backend in ("local", "openai"):
        assert document["turn_latency"][backend]["speech_end_to_first_audio"]["p50"] > 0
    parts = document["components"]
    assert 0 < parts["asr"]["threads_1"]["real_time_factor"] < 1.0  # faster than real time, even under load
    assert parts["hearing"]["hearing_per_10ms_speaking"]["mean_ms"] > parts["hearing"]["aec_per_10ms"]["mean_ms"]
    assert set(parts["wake_scaling"]) == {"heads_1", "heads_2", "heads_4"}
    assert parts["callback"]["callbacks"] > 100 and 0 < parts["callback"]["callback_p99_us"] < 10_000
    assert document["pi_estimate"]["pi4"]["idle_cpu_percent_of_core"] > idle["spine"]["cpu_percent_of_core"]
    text = report.read_text(encoding="utf-8")
    assert "## Targets (issue 17)" in text and "pipecat 1.14.0" in text and "seconds of audio, two scenes" in text
