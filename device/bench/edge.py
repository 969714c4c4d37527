"""`spine bench` (the edge bench): a fixed suite in wall-clock time that says what Spine costs and how it compares,
written as one table, its JSON and plots under docs/bench/.

* idle: `spine run` listening on a silent microphone next to openWakeWord's own loop and openWakeWord + Silero,
  in one run (device/bench/idle.py);
* interruption: a fixed slice of the echo suite (talk-overs 0.3-1.5 s into cold and warm answers, and echo-only
  scenes) through Spine, and the same mic audio through pipecat's Silero VAD and its default interruption
  (device/bench/peer_pipecat.py), each beside the physical floor;
* turn latency: end of speech -> first audio with the local responder and the streaming test server, by stage
  (device/bench/latency.py, one run per backend);
* components and scaling: device/bench/components.py;
* a Raspberry Pi estimate: published Pi/x86 ratios per component (`PI_FACTORS`) applied to the figures here.

`short` is the CI setting: every part runs, on seconds of audio and two scenes, so the bench cannot rot; its
figures mean nothing.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.bench import components
from device.bench.tables import write_report
from device.config import Config
from device.errors import UserError

Say = Any

INTERRUPTION_SCENES = (
    *(f"{c}_{onset}s_{k}_" for c in ("cold", "warm") for onset in ("0.3", "0.7", "1.5") for k in (1, 5, 7)),
    *("only_cold_02_", "only_cold_05_", "only_warm_08_", "only_warm_09_"),
)
"""The echo suite's scenes the edge bench runs (prefixes of their names): in each of cold and warm and at 0.3, 0.7
and 1.5 s into the answer, a stop phrase, the wake word with a question and a question without it; and four
echo-only scenes (0-6 dB of echo, one with a delay jump)."""
SHORT_INTERRUPTION_SCENES = ("cold_0.3s_1_", "only_cold_02_")
ECHO_SCENES = Path("scenes/echo")


@dataclass(frozen=True)
class Setting:
    idle_s: float
    hearing_s: float
    wake_s: float
    repeats: int
    scenes: tuple[str, ...]
    latency_questions: int | None  # None: the whole latency scene
    callback_s: float


FULL = Setting(
    idle_s=60.0,
    hearing_s=30.0,
    wake_s=60.0,
    repeats=5,
    scenes=INTERRUPTION_SCENES,
    latency_questions=None,
    callback_s=20.0,
)
SHORT = Setting(
    idle_s=5.0,
    hearing_s=3.0,
    wake_s=5.0,
    repeats=1,
    scenes=SHORT_INTERRUPTION_SCENES,
    latency_questions=2,
    callback_s=3.0,
)


def machine() -> dict[str, Any]:
    """The machine (device/bench/latency.py's description of it) and the commit measured."""
    from device.bench.latency import machine as described

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    return described() | {"commit": commit.stdout.strip() or None}


def run_edge(config: Config, config_toml: str, setting: Setting, out: Path, say: Say = print) -> dict[str, Any]:
    """Every part in turn (each alone on the machine), the document `report` renders."""
    from device.bench.idle import bench_idle

    began = time.monotonic()
    document: dict[str, Any] = {"machine": machine(), "short": setting is SHORT}
    document["idle"] = bench_idle(config, config_toml, setting.idle_s, say)
    say("components: speech to text, synthesis, hearing per period, wake word heads ...")
    document["components"] = {
        "asr": components.asr(config, setting.repeats),
        "tts": components.tts(config, setting.repeats),
        "hearing": components.hearing(config, setting.hearing_s),
        "wake_scaling": components.wake_scaling(config, setting.wake_s),
        "callback": _callback(config_toml, setting.callback_s, out / "callback", say),
    }
    document["turn_latency"] = _turn_latency(config, setting, out / "latency", say)
    # Every Spine process so far (the idle daemon, each latency run answering with all its models) has ended and
    # been waited for: the largest peak among them is what a board must hold.
    document["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    document["interruption"] = _interruption(config, setting, out / "interruption", say)
    document["pi_estimate"] = pi_estimate(document)
    document["wall_time_s"] = round(time.monotonic() - began, 1)
    return document


def _interruption(config: Config, setting: Setting, out: Path, say: Say) -> dict[str, Any]:
    """The scenes through Spine, then their recorded mic (raw and AEC3-cleaned) through pipecat, counted alike
    (device/bench/peer_pipecat.py)."""
    from device.bench.echo import run_suite
    from device.bench.peer_pipecat import compare_echo_suite, ensure_peer_venv, peer_venv_path

    scenes = sorted(path for path in ECHO_SCENES.glob("*.toml") if any(path.name.startswith(p) for p in setting.scenes))
    say(f"interruption: {len(scenes)} scenes of the echo suite through Spine ...")
    run_suite(config, scenes, out, jobs=max(1, os.cpu_count() or 1), compare_no_aec=False)
    python = ensure_peer_venv(peer_venv_path(), say)
    compared = compare_echo_suite(out, python, say)
    compared.pop("scenes")
    return {"scenes": [path.stem for path in scenes], "floor_ms": _floor_ms(config)} | compared


def _callback(config_toml: str, seconds: float, out: Path, say: Say) -> dict[str, Any]:
    """`spine bench audio` for `seconds` on the private PulseAudio room, whisper.cpp and Piper loading both cores
    alongside: the sound card callback's duration and jitter, xruns and cut to silence (device/bench/audio.py)."""
    from device.bench.realstream_room import room_server

    out.mkdir(parents=True, exist_ok=True)
    run_toml, result = out / "audio.toml", out / "audio.json"
    run_toml.write_text(config_toml + '\n[audio]\ninput_device = "pulse"\noutput_device = "pulse"\n', encoding="utf-8")
    say(f"components: the sound card callback, {seconds:g} s under load ...")
    with room_server() as env:
        done = subprocess.run(
            [sys.executable, "-m", "device", "bench", "audio", "--config", str(run_toml), "--seconds", str(seconds),
             "--switch-intervals-ms", "5", "--json", str(result)],
            env={**os.environ, **env}, capture_output=True, text=True, timeout=seconds + 300, check=False,
        )  # fmt: skip
    if not result.exists():
        raise UserError(f"spine bench audio failed: {done.stderr[-800:]}")
    measured: dict[str, Any] = json.loads(result.read_text(encoding="utf-8"))[0]
    return measured


def _floor_ms(config: Config) -> dict[str, float]:
    """What no barge-in can beat in the simulated room: one Silero window (the first chunk that holds the voice),
    one period (the decision reaches the card at the next one) and the card's output latency (none: the simulated
    card plays what it is given)."""
    period_ms = 1000.0 * config.period_samples / 16000
    return {"vad_window_ms": 32.0, "period_ms": period_ms, "output_latency_ms": 0.0, "total_ms": 32.0 + period_ms}


def _turn_latency(config: Config, setting: Setting, out: Path, say: Say) -> dict[str, Any]:
    from device.bench.latency import run_latency

    scene = Path("scenes/latency.toml")
    if setting.latency_questions is not None:
        scene = _first_questions(scene, setting.latency_questions, out)
    say(f"turn latency: {scene} once per backend on the wall clock ...")
    result = run_latency(config, scene, out, runs=1, progress=say)
    return {name: backend["stats"] for name, backend in result["backends"].items()}


def _first_questions(scene: Path, questions: int, out: Path) -> Path:
    """The scene with only its first `questions` [[say]] tables (the short setting)."""
    text = scene.read_text(encoding="utf-8")
    head, *says = text.split("\n[[say]]\n")
    out.mkdir(parents=True, exist_ok=True)
    short = out / "latency-short.toml"
    short.write_text(head + "".join("\n[[say]]\n" + s for s in says[:questions]), encoding="utf-8")
    return short


PI_FACTORS = {
    "wake": (8.0, 2.5),
    "vad": (5.0, 2.0),
    "asr": (15.0, 3.5),
    "tts": (8.0, 2.5),
    "python_numpy_aec": (5.0, 2.0),
}
"""Time on one Raspberry Pi 4 (1.8 GHz) / Pi 5 core over time on this bench's x86 core (AMD EPYC Zen 4 at about
3 GHz), per component: estimates from published figures (docs/bench/pi-estimate.md gives each source), not a
measurement. A Pi 4 at 1.5 GHz is 1.2 times slower again."""


def pi_estimate(document: dict[str, Any]) -> dict[str, Any]:
    """The measured per-component figures scaled by `PI_FACTORS`: idle CPU by its parts, and a turn's compute."""
    hearing = document["components"]["hearing"]
    wake_pct = 100.0 * hearing["wake_per_80ms"]["mean_ms"] / 80.0
    vad_pct = 2 * 100.0 * hearing["vad_per_32ms"]["mean_ms"] / 32.0  # two voice models: cleaned and raw mic
    rest_pct = max(0.0, document["idle"]["spine"]["cpu_percent_of_core"] - wake_pct - vad_pct)
    asr = document["components"]["asr"]
    asr_ms = min(v["mean_ms"] for k, v in asr.items() if k.startswith("threads_"))
    tts_first_ms = document["components"]["tts"]["first_chunk"]["mean_ms"]
    out: dict[str, Any] = {}
    for board, index in (("pi4", 0), ("pi5", 1)):
        idle = (wake_pct * PI_FACTORS["wake"][index] + vad_pct * PI_FACTORS["vad"][index]
                + rest_pct * PI_FACTORS["python_numpy_aec"][index])  # fmt: skip
        out[board] = {
            "idle_cpu_percent_of_core": round(idle, 1),
            "asr_ms_per_request": round(asr_ms * PI_FACTORS["asr"][index]),
            "tts_first_chunk_ms": round(tts_first_ms * PI_FACTORS["tts"][index]),
        }
    return out


def write(document: dict[str, Any], report: Path) -> None:
    from device.bench.edge_report import markdown, plots

    plots(document, report.parent)
    write_report(report, markdown(document), document)
