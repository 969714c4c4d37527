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
* hard: the room's drift, delay jumps, speaker clipping and the scene's stalls.

The measures per talk-over (honoured, missed, answered, onset -> silence, ...) are device/sim/bargein.py's.
The report (docs/echo-suite.md and .json) gives them per scene class and per onset, the latency split by the
measured echo-to-user level, and one table of the issue's targets, each marked met or missed.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from device.bench.tables import percentile as _percentile
from device.bench.tables import table_cell as _cell
from device.config import Config
from device.core.memory import is_stop_phrase
from device.sim.scene import Scene, load_scene
from device.sim.summary import strip_wake_phrase

SCENES_PER_WORKER = 4
"""Scenes a worker process runs before it is replaced (see `run_suite`)."""

# Latency groups by the echo's level relative to the user at the mic (measured per talk-over), with the
# issue's p95 targets; echo more than 6 dB louder than the user is outside them and reported on its own.
GROUPS = (
    ("user_at_least_as_loud", "user ≥ echo", 0.0, 150.0),
    ("echo_louder_up_to_6_db", "echo 0-6 dB louder", 6.0, 300.0),
    ("echo_louder_over_6_db", "echo > 6 dB louder", float("inf"), None),
)
CLASSES = ("cold", "warm")
TALK_KINDS = ("stop", "wake", "speech")


@dataclass(frozen=True)
class Target:
    """One of the issue's numbers: `measure` (a key of the AEC-on aggregates) compared with `goal`."""

    label: str
    measure: str
    compare: str  # "<=" or ">="
    goal: float
    unit: str

    def met(self, value: float | None) -> bool:
        """A measure with no data misses its target: a suite that cannot see a failure must not pass."""
        if value is None:
            return False
        return value <= self.goal if self.compare == "<=" else value >= self.goal


# Issue 9, "Numbers", simulated suite: the one table the report marks met or missed.
TARGETS = (
    Target("missed talk-overs, worst (class, onset) cell, onsets 0.3-6 s", "missed_pct_worst_cell", "<=", 2.0, "%"),
    Target("onset → silence p95, user ≥ echo", "p95_user_at_least_as_loud_ms", "<=", 150.0, "ms"),
    Target("onset → silence p95, echo up to 6 dB louder", "p95_echo_louder_up_to_6_db_ms", "<=", 300.0, "ms"),
    Target("stop phrases honoured (cut, nothing answered or said)", "stops_honoured_pct", ">=", 95.0, "%"),
    Target("stop phrases answered", "stops_answered", "<=", 0.0, ""),
    Target("false barge-ins on the echo-only set (pauses + cuts)", "echo_only_false_barge_ins", "<=", 0.0, ""),
    Target("self-interruptions, all scenes (pause/cut, no user sounding)", "self_interruptions", "<=", 0.0, ""),
    Target("self-replies, all scenes (reply to audio with no user in it)", "self_replies", "<=", 0.0, ""),
)


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
            ("jump", bool(getattr(room, "delay_jumps", ()))),
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


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _group(level_db: float | None) -> str:
    level = level_db if level_db is not None else -99.0  # no echo at all: the user is louder
    return next(key for key, _, upto_db, _ in GROUPS if level <= upto_db)


def talk_over_rows(runs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every talk-over of the runs, with its scene's description; the scripted one of a talk-over scene is
    `scripted` (its onset and class are the scene's); others (a request that fell on the assistant talking to
    itself, say) count in the totals only."""
    rows = []
    for run in runs:
        for t in run["summary"]["interruptions"]["talk_overs"]:
            scripted = run["kind"] == "talk-over" and t["text"] == run["talk_text"]
            rows.append(
                t
                | {
                    "scene": run["scene"],
                    "class": run["class"],
                    "onset_class_s": run["onset_s"] if scripted else None,
                    "talk_kind": run["talk_kind"] if scripted else None,
                    "hard": run["hard"],
                    "scripted": scripted,
                }
            )
    return rows


def cell(rows: list[dict[str, Any]], unlanded: int = 0) -> dict[str, Any]:
    """The measures of a set of talk-overs: missed, stop phrases, onset -> silence by echo level."""
    stops = [t for t in rows if t["stop_phrase"]]
    missed = sum(1 for t in rows if not t["honoured"])
    latency: dict[str, Any] = {}
    for key, _, _, target in GROUPS:
        values = [
            float(t["onset_to_silence_ms"])
            for t in rows
            if t["interrupted"] and t["onset_to_silence_ms"] is not None and _group(t["echo_to_user_db"]) == key
        ]
        latency[key] = {
            "n": len(values),
            "p50": _percentile(values, 0.5),
            "p95": _percentile(values, 0.95),
            "target_p95": target,
        }
    return {
        "talk_overs": len(rows),
        "missed": missed,
        "missed_pct": _pct(missed, len(rows)),
        "interrupted": sum(1 for t in rows if t["interrupted"]),
        "stops": len(stops),
        "stops_honoured": sum(1 for t in stops if t["honoured"]),
        "stops_honoured_pct": _pct(sum(1 for t in stops if t["honoured"]), len(stops)),
        "stops_answered": sum(1 for t in stops if t["answered"]),
        "unlanded": unlanded,
        "onset_to_silence_ms": latency,
    }


def _unlanded(runs: list[dict[str, Any]], scene_class: str | None = None, onset_s: float | None = None) -> int:
    """Scripted talk-overs that found no answer playing (the assistant had cut it itself, or the request was
    misheard and the answer was short), in the scenes of `scene_class` and `onset_s` (None: any)."""
    count = 0
    for run in runs:
        if run["kind"] == "talk-over" and scene_class in (None, run["class"]) and onset_s in (None, run["onset_s"]):
            found = sum(1 for t in run["summary"]["interruptions"]["talk_overs"] if t["text"] == run["talk_text"])
            count += max(0, run["scripted_talk_overs"] - found)
    return count


def aggregate(runs: list[dict[str, Any]], aec_on: bool) -> dict[str, Any]:
    mine = [r for r in runs if r["aec"] == aec_on]
    only = [r for r in mine if r["kind"] == "echo-only"]
    rows = talk_over_rows(mine)
    scripted = [t for t in rows if t["scripted"]]
    onsets = sorted({r["onset_s"] for r in mine if r["onset_s"] is not None})
    by_class_and_onset = {
        f"{c} {o}": cell(
            [t for t in scripted if t["class"] == c and t["onset_class_s"] == o],
            _unlanded(mine, c, o),
        )
        for c in CLASSES
        for o in onsets
        if any(r["class"] == c and r["onset_s"] == o for r in mine)
    }
    total = cell(rows, _unlanded(mine))
    erles = [r["summary"]["aec"].get("erle_after_convergence_db") for r in mine if r["summary"]["aec"]["enabled"]]
    converged = [r["summary"]["aec"].get("converged_at_s") for r in mine if r["summary"]["aec"]["enabled"]]
    costs = [r["summary"]["aec"].get("cost_per_frame_us") for r in mine if r["summary"]["aec"]["enabled"]]
    worst = [v["missed_pct"] for v in by_class_and_onset.values() if v["missed_pct"] is not None]

    def interruptions(key: str, runs_: list[dict[str, Any]]) -> int:
        return sum(int(r["summary"]["interruptions"][key]) for r in runs_)

    self_replies = [
        {"scene": r["scene"]} | reply for r in mine for reply in r["summary"]["interruptions"]["self_replies"]
    ]
    return {
        "scenes": len(mine),
        "echo_only_scenes": len(only),
        "echo_only_assistant_speech_min": round(sum(r["summary"]["assistant_speech_s"] for r in only) / 60, 1),
        "assistant_speech_min": round(sum(r["summary"]["assistant_speech_s"] for r in mine) / 60, 1),
        "echo_only_false_barge_ins": interruptions("false_pauses", only) + interruptions("false_cancels", only),
        "self_interruptions": interruptions("self_interruptions", mine),
        "self_interruption_scenes": sorted(
            r["scene"] for r in mine if r["summary"]["interruptions"]["self_interruptions"]
        ),
        "self_replies": len(self_replies),
        "self_reply_list": self_replies,
        "talk_overs": total["talk_overs"],
        "onset_to_silence_ms": total["onset_to_silence_ms"],
        "missed": total["missed"],
        "missed_pct": total["missed_pct"],
        # `spine bench echo` prints "missed <missed> of <this>": every talk-over counts now, whatever its length.
        "missed_pct_worst_cell": max(worst) if worst else None,
        "p95_user_at_least_as_loud_ms": total["onset_to_silence_ms"]["user_at_least_as_loud"]["p95"],
        "p95_echo_louder_up_to_6_db_ms": total["onset_to_silence_ms"]["echo_louder_up_to_6_db"]["p95"],
        "stops": total["stops"],
        "stops_honoured": total["stops_honoured"],
        "stops_honoured_pct": total["stops_honoured_pct"],
        "stops_answered": total["stops_answered"],
        "unlanded": total["unlanded"],
        "by_class_and_onset": by_class_and_onset,
        "by_onset": {
            str(o): cell([t for t in scripted if t["onset_class_s"] == o], _unlanded(mine, onset_s=o)) for o in onsets
        },
        "by_class": {
            c: cell([t for t in scripted if t["class"] == c], _unlanded(mine, scene_class=c)) for c in CLASSES
        },
        "by_talk_kind": {k: cell([t for t in scripted if t["talk_kind"] == k]) for k in TALK_KINDS},
        "by_room": {
            "hard": cell([t for t in scripted if t["hard"]]),
            "plain": cell([t for t in scripted if not t["hard"]]),
        },
        "false_resumes": interruptions("false_resumes", mine),
        "false_pauses_all_scenes": interruptions("false_pauses", mine),
        "false_cancels_all_scenes": interruptions("false_cancels", mine),
        "erle_after_convergence_db_median": _median([e for e in erles if e is not None]),
        "converged_at_s_median": _median([c for c in converged if c is not None]),
        "never_converged": sum(1 for c in converged if c is None),
        "aec_cost_per_frame_us_mean": round(statistics.fmean(costs), 1) if costs else None,
    }


def targets(on: dict[str, Any]) -> list[dict[str, Any]]:
    """The target table: each of `TARGETS` with its measured value (AEC on) and whether it is met."""
    return [
        {
            "target": t.label,
            "measure": t.measure,
            "value": on.get(t.measure),
            "goal": f"{t.compare} {t.goal:g}{(' ' + t.unit) if t.unit and t.unit != '%' else t.unit}",
            "met": t.met(on.get(t.measure)),
        }
        for t in TARGETS
    ]


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _latency(stats: dict[str, Any]) -> str:
    return f"{_cell(stats['p50'])} / {_cell(stats['p95'])} ({stats['n']})"


def _cell_row(label: list[str], stats: dict[str, Any]) -> str:
    latency = stats["onset_to_silence_ms"]
    stops = f"{stats['stops_honoured']} of {stats['stops']}" if stats["stops"] else "-"
    return (
        "| "
        + " | ".join(
            [
                *label,
                str(stats["talk_overs"]),
                f"{stats['missed']} ({_cell(stats['missed_pct'])} %)",
                stops,
                str(stats["stops_answered"]),
                *(_latency(latency[key]) for key, _, _, _ in GROUPS),
                str(stats["unlanded"]),
            ]
        )
        + " |"
    )


_CELL_HEADER = (
    " talk-overs | missed (%) | stops honoured | stops answered | onset → silence ms p50 / p95 (n), user ≥ echo"
    " | echo 0-6 dB louder | echo > 6 dB louder | not landed |"
)


def report_markdown(result: dict[str, Any], command: str) -> str:
    on = result["aggregates"]["aec"]
    off = result["aggregates"].get("no_aec")
    lines = [
        "# Echo suite: barge-in from the first syllable, cold and warm, in the simulated room",
        "",
        f"Generated by `{command}` (virtual clock, real models, simulated room; scenes in `scenes/echo/`, made by",
        f"`scripts/make_echo_scenes.py`): {on['scenes']} scenes with AEC3 on, {on['talk_overs']} talk-overs,"
        f" {on['assistant_speech_min']} min of assistant speech; {_cell(result.get('wall_time_s'))} s wall time,"
        f" {_cell(result.get('cpu_s'))} s of CPU.",
        "",
        "Every scripted utterance is addressed to the assistant, so every talk-over is honoured or missed whatever",
        "its length. Honoured: playback was cut while it sounded (or within 1 s after); for a stop phrase also",
        "nothing answered and nothing spoken after but chimes. Onset → silence: the user's first sample to the",
        "first sample the speaker no longer plays the answer, split by the measured echo-to-user level (the echo's",
        "active level around the onset over the user's). Cold: the first answer after start; warm: the story",
        "after a short answer. Onset: seconds into the answer. Not landed: a scripted talk-over that found no",
        "answer playing, because the assistant had already cut its answer itself (a self-interruption, counted",
        "below) or the request was misheard and the answer was short; counted apart from missed.",
        "",
        "## Targets (issue 9)",
        "",
        "| target | measured | goal | |",
        "|---|---|---|---|",
    ]
    for row in targets(on):
        lines.append(
            f"| {row['target']} | {_cell(row['value'])} | {row['goal']} | {'met' if row['met'] else 'MISSED'} |"
        )
    lines += [
        "",
        "## By scene class and onset",
        "",
        "| class | onset s |" + _CELL_HEADER,
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, stats in on["by_class_and_onset"].items():
        lines.append(_cell_row(key.split(" "), stats))
    for onset, stats in on["by_onset"].items():
        lines.append(_cell_row(["both", onset], stats))
    for scene_class, stats in on["by_class"].items():
        lines.append(_cell_row([scene_class, "all"], stats))
    lines += [
        "",
        "## By talk-over kind and room",
        "",
        "| talk-over |" + _CELL_HEADER,
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, stats in on["by_talk_kind"].items():
        lines.append(_cell_row([kind], stats))
    for room, stats in on["by_room"].items():
        lines.append(_cell_row([f"{room} room"], stats))
    lines += [
        "",
        "## Hearing itself",
        "",
        "| measure | AEC on |" + (" AEC off (echo-only scenes) |" if off else ""),
        "|---|---|" + ("---|" if off else ""),
        f"| echo-only scenes / assistant speech | {on['echo_only_scenes']} / {on['echo_only_assistant_speech_min']} min"
        + (f" | {off['echo_only_scenes']} / {off['echo_only_assistant_speech_min']} min |" if off else " |"),
        f"| false barge-ins over the echo-only set (pauses + cuts) | {on['echo_only_false_barge_ins']}"
        + (f" | {off['echo_only_false_barge_ins']} |" if off else " |"),
        f"| self-interruptions, all scenes (pause/cut with no user sounding) | {on['self_interruptions']}"
        + (f" | {off['self_interruptions']} |" if off else " |"),
        f"| self-replies, all scenes | {on['self_replies']}" + (f" | {off['self_replies']} |" if off else " |"),
        f"| false resumes (playback resumed while the user spoke) | {on['false_resumes']}"
        + (f" | {off['false_resumes']} |" if off else " |"),
        f"| ERLE after convergence (median) | {_cell(on['erle_after_convergence_db_median'])} dB"
        + (" | - |" if off else " |"),
        f"| convergence after start (median; never) | {_cell(on['converged_at_s_median'])} s;"
        f" {on['never_converged']}" + (" | - |" if off else " |"),
        f"| AEC cost per 10 ms frame (mean) | {_cell(on['aec_cost_per_frame_us_mean'])} µs"
        + (" | - |" if off else " |"),
        "",
    ]
    if on["self_interruption_scenes"]:
        lines += ["Scenes with self-interruptions: " + ", ".join(on["self_interruption_scenes"]) + ".", ""]
    for reply in on["self_reply_list"]:
        lines.append(f"* self-reply in {reply['scene']} at {reply['asked_s']} s: {reply['transcript']!r}")
    lines += [
        "",
        "## Per scene",
        "",
        "Echo/user: measured at the mic for the scripted talk-over, nominal otherwise. Times in seconds of the scene.",
        "",
        "| scene | AEC | class | hard | echo/user dB | delay ms | RT60 s | speech s | pauses | resumes | cuts |"
        " self-int. | self-replies | talk-over | into answer s | honoured | interrupted | answered |"
        " onset → silence ms | converged s | ERLE dB |",
        "|" + "---|" * 21,
    ]
    for run in result["runs"]:
        s, i = run["summary"], run["summary"]["interruptions"]
        talk = next((t for t in i["talk_overs"] if t["text"] == run["talk_text"]), None)
        aec = s["aec"]
        lines.append(
            "| "
            + " | ".join(
                _cell(v)
                for v in (
                    run["scene"],
                    run["aec"],
                    run["class"],
                    "+".join(run["hard"]) or None,
                    talk["echo_to_user_db"] if talk else run["nominal_echo_to_user_db"],
                    run["delay_ms"],
                    run["rt60_s"],
                    s["assistant_speech_s"],
                    i["pauses"],
                    i["resumes"],
                    i["cuts"],
                    i["self_interruptions"],
                    len(i["self_replies"]),
                    repr(run["talk_text"]) if run["talk_text"] else None,
                    talk["into_answer_s"] if talk else None,
                    talk["honoured"] if talk else None,
                    talk["interrupted"] if talk else None,
                    talk["answered"] if talk else None,
                    talk["onset_to_silence_ms"] if talk else None,
                    aec.get("converged_at_s"),
                    aec.get("erle_after_convergence_db"),
                )
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def report_json(result: dict[str, Any]) -> dict[str, Any]:
    """What goes beside the Markdown report (same name, .json): the aggregates and each run, slimmed."""
    return {
        "targets": targets(result["aggregates"]["aec"]),
        "aggregates": result["aggregates"],
        "wall_time_s": result.get("wall_time_s"),
        "cpu_s": result.get("cpu_s"),
        "runs": [
            {k: v for k, v in r.items() if k != "summary"} | {"summary": _slim(r["summary"])} for r in result["runs"]
        ],
    }


def _slim(summary: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "assistant_speech_s",
        "interruptions",
        "aec",
        "turns",
        "false_barge_ins",
        "self_replies",
        "stale_samples_played",
        "leaks",
        "utterances",
    )
    return {k: summary[k] for k in keep if k in summary}
