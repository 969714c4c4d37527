"""`spine bench latency`: how long a user waits for the answer, in the simulated room, on the wall clock.

A scene of short questions (scenes/latency.toml) runs through `spine demo --clock wall` — the real models on
worker threads, the virtual card paced in real time — `runs` times with each reply backend:

* local: the built-in responder (no network; its first word comes at once);
* openai: `[reply] backend = "openai"` against an in-process fake OpenAI-compatible server that streams a
  realistic spoken answer at a set pace (first token after 300 ms, then 30 tokens/s by default).

Each run is a fresh process (models loaded, nothing warm, as the daemon starts); a run that crashes is kept
aside under `<run>-crashed-<n>`, listed in the report, and run again. Every answered turn gives one sample of
each stage; the report is p50/p95 over all of them. The stages, in the order a turn goes through them (times
from the event log and the card, so at a 10 ms period's grain):

  | stage            | from                                  | to                                         |
  |------------------|---------------------------------------|--------------------------------------------|
  | endpointing      | the user's voice ends (ground truth)  | the endpoint decision (end of `Hearing`)   |
  | asr              | the endpoint decision                 | TranscriptReady up to the endpoint's end   |
  | reply_first_text | StartReply                            | the first ReplyDelta (the first token)     |
  | first_sentence   | the first ReplyDelta                  | the first StartTts (a sentence or clause)  |
  | tts_first_chunk  | the first StartTts                    | its TtsChunkReady                          |
  | to_speaker       | that TtsChunkReady                    | the reply's first sample at the speaker    |
  | other            | whatever the stages above leave out (hand-offs between them)               |

The ground-truth end of the voice is the scripted utterance's end less espeak-ng's trailing silence, which
is measured on the same synthesis the card played (espeak-ng ends every clip with ~0.3 s of silence).

The measures: device/bench/latency_measures.py; the report: device/bench/latency_report.py.

The target (from the issue): the first audio comes at most the model's first-token delay + 250 ms after the
endpoint decision, on this machine. The endpointer's wait (`[vad] end_silence_s` of silence) is deliberate
and reported separately. For the fake server the first-token delay is the configured one; the local
responder has none configured, so its measured p50 time to first text stands in.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from device.bench.latency_measures import backend_result, trailing_silence_ms, turn_rows
from device.config import Config
from device.errors import UserError
from device.runtime.eventlog import read_log
from device.sim.demo import demo
from device.sim.scene import load_scene
from device.sim.summary import strip_wake_phrase
from device.testing.fake_llm import FakeLlmConfig, FakeLlmServer

FAKE_REPLY = (
    "Paris is the capital and largest city of France. "
    "It sits on the river Seine, and about two million people live there."
)
"""The fake model's answer to every question: a short first sentence (9 words), then one longer one."""

MAX_ATTEMPTS = 3
"""A run that crashes is run again, at most this many times in all (each crash is kept and reported)."""

Progress = Callable[[str], None]


def run_latency(
    config: Config,
    scene_path: Path,
    out_dir: Path,
    runs: int,
    first_token_ms: float = 300.0,
    tokens_per_s: float = 30.0,
    reply: str = FAKE_REPLY,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the scene `runs` times per backend in wall clock; every run's files go under `out_dir`."""
    scene = load_scene(scene_path)
    wake_phrase = config.wake.model.replace("_", " ")
    tails_ms = {
        strip_wake_phrase(say.text, wake_phrase): trailing_silence_ms(say.text, say.voice, say.gain_db)
        for say in scene.say
    }
    fake = FakeLlmConfig(first_token_delay_s=first_token_ms / 1000, tokens_per_s=tokens_per_s, reply=reply)
    load_before = os.getloadavg()
    server = FakeLlmServer(fake)
    base_url = server.start()
    remote = replace(
        config.reply, backend="openai", base_url=base_url, model="fake-llm", api_key_env=None, api_key_file=None
    )
    backends = {
        "local": replace(config, reply=replace(config.reply, backend="local")),
        "openai": replace(config, reply=remote),
    }
    result: dict[str, Any] = {
        "scene": str(scene_path),
        "questions": len(scene.say),
        "runs": runs,
        "machine": machine(),
        "load_average_before": [round(x, 2) for x in load_before],
        "fake_server": {"first_token_ms": first_token_ms, "tokens_per_s": tokens_per_s, "reply": reply},
        "backends": {},
    }
    try:
        for name, backend_config in backends.items():
            turns: list[dict[str, Any]] = []
            run_rows: list[dict[str, Any]] = []
            crashes: list[dict[str, Any]] = []
            for index in range(runs):
                run_dir = out_dir / name / f"run{index + 1}"
                summary = _run_until_done(backend_config, scene_path, run_dir, crashes, progress)
                mine = turn_rows(summary, read_log(run_dir / "events.jsonl").steps, tails_ms)
                for turn in mine:
                    turn["run"] = index + 1
                turns += mine
                answered = sum(1 for t in mine if t["answered"])
                run_rows.append(
                    {
                        "run": index + 1,
                        "wall_time_s": summary["wall_time_s"],
                        "xruns": summary["xruns"],
                        "questions": len(scene.say),
                        "answered": answered,
                        "load_average": round(os.getloadavg()[0], 2),
                    }
                )
                if progress is not None:
                    progress(
                        f"{name} run {index + 1}/{runs}: {answered}/{len(scene.say)} answered, "
                        f"{summary['wall_time_s']} s, xruns {summary['xruns']}"
                    )
            first_token = first_token_ms if name == "openai" else None
            result["backends"][name] = backend_result(turns, run_rows, crashes, first_token)
    finally:
        server.stop()
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


def _run_until_done(
    config: Config, scene_path: Path, run_dir: Path, crashes: list[dict[str, Any]], progress: Progress | None
) -> dict[str, Any]:
    """One run of the scene in a fresh process; a run that crashes is kept aside, noted and run again.

    A process per run: each starts as the daemon does (models loaded, nothing warm), and a crash in one
    run (its exception, or an abort in a native library on the way out) cannot take the others with it.
    """
    for attempt in range(1, MAX_ATTEMPTS + 1):
        if run_dir.exists():
            shutil.rmtree(run_dir)
        child = multiprocessing.get_context("spawn").Process(
            target=_run_in_child, args=(config, scene_path, run_dir), name=f"spine-latency-{run_dir.name}"
        )
        child.start()
        child.join()
        summary_path = run_dir / "summary.json"
        if summary_path.is_file():  # written last by `demo`: the run finished
            summary: dict[str, Any] = json.loads(summary_path.read_text(encoding="utf-8"))
            return summary
        kept = run_dir.with_name(f"{run_dir.name}-crashed-{attempt}")
        if kept.exists():
            shutil.rmtree(kept)
        if run_dir.exists():
            run_dir.rename(kept)
        error = kept / "error.txt"
        last = error.read_text(encoding="utf-8").strip().splitlines()[-1] if error.is_file() else ""
        crashes.append({"run_dir": str(kept), "attempt": attempt, "exit_code": child.exitcode, "error": last})
        if progress is not None:
            again = "; running it again" if attempt < MAX_ATTEMPTS else ""
            where = f"{run_dir.parent.name}/{run_dir.name}"
            progress(f"  {where} crashed (exit {child.exitcode}: {last}); files in {kept}{again}")
    raise UserError(f"{run_dir}: crashed {MAX_ATTEMPTS} times in a row; see {run_dir.parent}/*-crashed-*/")


def _run_in_child(config: Config, scene_path: Path, run_dir: Path) -> None:
    """The body of a run's process: the scene through `demo` on the wall clock; its output goes to a file."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "output.txt").open("w", encoding="utf-8") as output:
        # Native libraries write to the file descriptors directly, so both are redirected, not sys.stdout.
        os.dup2(output.fileno(), 1)
        os.dup2(output.fileno(), 2)
        try:
            demo(config, load_scene(scene_path), scene_path.name, run_dir, "wall")
        except BaseException:
            (run_dir / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
            raise


def machine() -> dict[str, Any]:
    """The machine a bench ran on: CPU model, cores, architecture, Python and the date."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:  # not Linux: the CPU model is a nicety
        pass
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "arch": platform.machine(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }
