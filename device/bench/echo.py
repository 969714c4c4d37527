"""`spine bench echo`: the echo scene suite in virtual time, and its report against the issue's targets.

Every scene of the suite (scenes/echo/, made by scripts/make_echo_scenes.py) runs with echo cancellation on,
through the same path as `spine demo` (real models, the simulated room), in worker processes (spawned, not
forked: the echo canceller is made in the process that uses it). With `compare_no_aec` the echo-only scenes
also run with `[aec] enabled = false`, to show what the canceller replaces (the crude echo gate).

What a scene is comes from the scene itself, not its file name:
* kind: `talk-over` if a scripted utterance starts "after speaking" (the user talks over an answer), else
  `echo-only`;
* class: `cold` if only one request comes before the talk-over (the first answer after start), `warm` if an
  earlier exchange came first (an answer that follows a short one);
* onset: the talk-over's `delay_s`, seconds into the answer;
* talk-over kind: `stop` (a stop phrase, by the machine's own definition), `wake` (starts with the wake
  phrase), `speech` (neither: a barge-in by voice alone);
* hard: the room's drift, delay jumps (one period), moves (a jump beyond `MOVE_MS`: a sound server's buffer grown
  under load), speaker clipping and the scene's stalls.

The measures per talk-over (honoured, missed, answered, onset -> silence, ...) are device/sim/bargein.py's;
their aggregates and the targets: device/bench/echo_measures.py; the report: device/bench/echo_report.py.
The report (docs/echo-suite.md and .json) gives them per scene class and per onset, the latency split by the
measured echo-to-user level, and one table of the issue's targets, each marked met or missed.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from device.bench.echo_measures import aggregate
from device.config import Config
from device.core.memory import is_stop_phrase
from device.sim.scene import Scene, load_scene
from device.sim.summary import strip_wake_phrase

SCENES_PER_WORKER = 4
"""Scenes a worker process runs before it is replaced (see `run_suite`)."""


MOVE_MS = 20.0
"""A delay jump larger than this is a move of the echo path (a sound server's buffer grown under load), not one
dropped or repeated period."""


@dataclass(frozen=True)
class SceneInfo:
    kind: str  # "talk-over" or "echo-only"
    scene_class: str  # "cold" or "warm"
    onset_s: float | None  # the scripted talk-over's seconds into the answer
    talk_kind: str | None  # "stop", "wake" or "speech"
    talk_text: str | None
    hard: tuple[str, ...]


def describe(scene: Scene, wake_phrase: str, stop_phrases: tuple[str, ...]) -> SceneInfo:
    """What the scene tests, read from its script and room (see the module docstring)."""
    talk = next((i for i, say in enumerate(scene.say) if say.after == "speaking"), None)
    before = scene.say if talk is None else scene.say[:talk]
    scene_class = "warm" if len(before) >= 2 else "cold"
    room = scene.room
    hard = tuple(
        name
        for name, present in (
            ("drift", getattr(room, "drift_ppm", 0.0) != 0.0),
            ("jump", any(abs(jump.ms) <= MOVE_MS for jump in getattr(room, "delay_jumps", ()))),
            ("move", any(abs(jump.ms) > MOVE_MS for jump in getattr(room, "delay_jumps", ()))),
            ("clip", getattr(room, "speaker_clip_dbfs", None) is not None),
            ("stall", bool(getattr(scene, "stall", ()))),
        )
        if present
    )
    if talk is None:
        return SceneInfo("echo-only", scene_class, None, None, None, hard)
    text = scene.say[talk].text
    if is_stop_phrase(text, stop_phrases):
        talk_kind = "stop"
    elif strip_wake_phrase(text, wake_phrase) != text:
        talk_kind = "wake"
    else:
        talk_kind = "speech"
    return SceneInfo("talk-over", scene_class, scene.say[talk].delay_s, talk_kind, text, hard)


def _wake_phrase(config: Config) -> str:
    return config.wake.model.replace("_", " ")


def _run_one(task: tuple[Config, Path, bool, Path]) -> dict[str, Any]:
    from device.sim.demo import demo  # imported in the worker: the models load there

    config, scene_path, aec_on, out_dir = task
    config = replace(config, aec=replace(config.aec, enabled=aec_on))
    scene = load_scene(scene_path)
    info = describe(scene, _wake_phrase(config), config.barge_in.stop_phrases)
    began, cpu_began = time.perf_counter(), time.process_time()
    summary = demo(config, scene, scene_path.name, out_dir, "virtual")
    room = scene.room
    user_gain = scene.say[0].gain_db if scene.say else 0.0
    return {
        "scene": scene_path.stem,
        "kind": info.kind,
        "class": info.scene_class,
        "onset_s": info.onset_s,
        "talk_kind": info.talk_kind,
        "talk_text": info.talk_text,
        "scripted_talk_overs": sum(1 for say in scene.say if say.after == "speaking"),
        "hard": list(info.hard),
        "aec": aec_on,
        "nominal_echo_to_user_db": round(room.echo_gain_db - user_gain, 1),
        "delay_ms": room.echo_delay_ms,
        "rt60_s": room.rt60_s,
        "noise_dbfs": room.noise_dbfs,
        "run_s": round(time.perf_counter() - began, 1),
        # CPU of every thread of the worker (the models' included): what sizes the suite, whatever else runs.
        "cpu_s": round(time.process_time() - cpu_began, 1),
        "summary": summary,
    }


def run_suite(
    config: Config, scenes: list[Path], out_dir: Path, jobs: int, compare_no_aec: bool = True
) -> dict[str, Any]:
    """Every scene with AEC on; with `compare_no_aec`, the echo-only scenes with AEC off as well."""
    wake, stops = _wake_phrase(config), config.barge_in.stop_phrases
    infos = {scene: describe(load_scene(scene), wake, stops) for scene in scenes}
    tasks = [(config, scene, True, out_dir / scene.stem / "aec") for scene in scenes]
    if compare_no_aec:
        tasks += [
            (config, scene, False, out_dir / scene.stem / "no-aec")
            for scene in scenes
            if infos[scene].kind == "echo-only"
        ]
    # Longest scenes first, so that the last ones to finish are short and both workers stay busy to the end.
    order = sorted(range(len(tasks)), key=lambda i: -(load_scene(tasks[i][1]).duration_s or 60.0))
    began = time.perf_counter()
    # Workers are replaced every few scenes: each run loads the models afresh and some memory stays behind (a
    # worker that ran half of the 92 scenes reached 5-6 GB, and two of them with a second suite beside got one
    # killed by the kernel's OOM killer). A fresh pool per batch rather than `max_tasks_per_child`, which hung
    # Python 3.11's executor (no replacement worker was started: gh-94777).
    spawn = multiprocessing.get_context("spawn")
    done: dict[int, dict[str, Any]] = {}
    batch = max(1, jobs) * SCENES_PER_WORKER
    for first in range(0, len(order), batch):
        part = order[first : first + batch]
        with ProcessPoolExecutor(max_workers=jobs, mp_context=spawn) as pool:
            done |= dict(zip(part, pool.map(_run_one, [tasks[i] for i in part]), strict=True))
    runs = [done[i] for i in range(len(tasks))]
    aggregates = {"aec": aggregate(runs, True)}
    if compare_no_aec:
        aggregates["no_aec"] = aggregate(runs, False)
    return {
        "runs": runs,
        "aggregates": aggregates,
        "wall_time_s": round(time.perf_counter() - began, 1),
        "cpu_s": round(sum(r["cpu_s"] for r in runs), 1),
    }
