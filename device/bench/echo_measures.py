"""`spine bench echo`'s aggregates: the talk-overs of every run by scene class, onset, talk-over kind and room,
the latency grouped by the measured echo-to-user level, and the issue's targets, each met or missed."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from device.bench.tables import percentile as _percentile

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
