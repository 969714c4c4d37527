"""The real-stream soak (`spine bench realstream --hour`): one `spine run` on the PulseAudio room for an hour of
conversations, each talked over, judged for what a long run breaks: a state it never leaves, a job that never
ends, memory that grows, a log that grows without bound. Its report is docs/real-stream-hour.md (+ .json), and
`spine bench reliability` quotes it in docs/reliability.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from device.bench.realstream_report import aggregate
from device.bench.tables import table_cell as _cell

RSS_FLAT_FRACTION = 0.05
"""Memory counts as flat when the last sample is within 5 % of the first one after the first tenth of the run (the
models' arenas and caches grow while the first conversations take each path for the first time: measured, +118 MB
over the first conversation and +78 MB over the second; what grows after the first tenth is a leak). The simulated
soak (device/bench/soak.py) judges its memory from the same point."""
WARM_FRACTION = 0.1
LOAD_BANDS = ((0.0, 1.0), (1.0, 2.5), (2.5, float("inf")))
"""Bands of the machine's 1-minute load average (2 cores) for the missed talk-overs: with time and load both
growing over a loaded hour, the quarters alone cannot say which one hearing lost to."""


def _slope_mb_per_hour(samples: list[list[float]], rate_hz: int) -> float | None:
    """The least-squares slope of resident memory over the recording's clock, MB per hour."""
    if len(samples) < 3:
        return None
    xs = [at / rate_hz / 3600 for at, _ in samples]
    ys = [mb for _, mb in samples]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return None
    return round(sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread, 2)


def _missed_of(rows: list[tuple[dict[str, Any], float | None]]) -> dict[str, Any]:
    talked = [(c, load) for c, load in rows if c["status"] == "talked over"]
    loads = sorted(load for _, load in rows if load is not None)
    return {
        "talk_overs": len(talked),
        "missed": sum(1 for c, _ in talked if not c["interrupted"]),
        "load_median": loads[len(loads) // 2] if loads else None,
    }


def missed_over_the_run(session: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Missed talk-overs by quarter of the run and by the load average measured before each conversation."""
    conversations = session["conversations"]
    loads: list[float | None] = list(session.get("load_averages", []))
    if len(loads) != len(conversations):  # an older run without a sample per conversation
        loads = [None] * len(conversations)
    rows = list(zip(conversations, loads, strict=True))
    n = len(rows)
    quarters = [_missed_of(rows[q * n // 4 : (q + 1) * n // 4]) for q in range(4)]
    bands = [
        {"from": low, "below": None if high == float("inf") else high}
        | _missed_of([(c, load) for c, load in rows if load is not None and low <= load < high])
        for low, high in LOAD_BANDS
    ]
    return {"by_quarter": quarters, "by_load": [band for band in bands if band["talk_overs"]]}


def hour_result(session: dict[str, Any], rate_hz: int) -> dict[str, Any]:
    """The soak's figures from one analysed session (device/bench/realstream_analysis.py's `analyse_directory`)."""
    figures = aggregate([session], bool(session["load"]))
    rss = [[float(at), float(mb)] for at, mb in session.get("rss_mb", []) if mb > 0]
    warm_from = WARM_FRACTION * float(session["recorded_s"]) * rate_hz
    warm = [sample for sample in rss if sample[0] >= warm_from] or rss[-1:]
    hours = float(session["recorded_s"]) / 3600
    growth = round(warm[-1][1] - warm[0][1], 1) if warm else None
    flat = growth is not None and growth <= RSS_FLAT_FRACTION * warm[0][1]
    stuck = int(session["unsettled"])
    return {
        "session": session,
        "aggregate": figures,
        "minutes": round(float(session["recorded_s"]) / 60, 1),
        "minutes_planned": session.get("minutes_planned"),
        "conversations": len(session["conversations"]),
        "stuck": stuck,
        "rss_mb": {
            "at_start": rss[0][1] if rss else None,
            "after_first_tenth": warm[0][1] if warm else None,
            "at_end": rss[-1][1] if rss else None,
            "max": max((mb for _, mb in rss), default=None),
            "growth_after_first_tenth": growth,
            "slope_mb_per_hour": _slope_mb_per_hour(warm, rate_hz),
        },
        "log_bytes": int(session["log_bytes"]),
        "log_mb_per_hour": round(int(session["log_bytes"]) / 1e6 / hours, 2) if hours > 0 else None,
        "targets": {"stuck": stuck == 0, "leaks": figures["leaks"] == 0, "rss_flat": flat},
        "missed_over_the_run": missed_over_the_run(session),
    }


def _met(value: bool) -> str:
    return "**met**" if value else "**missed**"


def hour_markdown(result: dict[str, Any], command: str) -> str:
    a, rss = result["aggregate"], result["rss_mb"]
    silence = a["onset_to_silence_ms"]
    return "\n".join(
        [
            "# Real-stream soak: an hour of `spine run` on a PulseAudio room",
            "",
            f"Generated by `{command}`. One `spine run` (real models, 48 kHz, default configuration) on the room of",
            "docs/real-stream.md, without added load: conversation after conversation for the planned time, the user",
            "asking for a story and talking over it (every offset and kind in turn); a story still playing 8 s after",
            "a missed talk-over is ended by a mute. Resident memory is read from /proc before each conversation.",
            "",
            "| measure | value | target (issue 16) |",
            "|---|---|---|",
            f"| minutes recorded / planned | {result['minutes']} / {_cell(result['minutes_planned'])} | ≥ 60 |",
            f"| conversations / talk-overs | {result['conversations']} / {a['talk_overs']} | |",
            f"| stuck: Spine not idle 40 s after a conversation (mutes included) | {result['stuck']} |"
            f" 0: {_met(result['targets']['stuck'])} |",
            f"| leaked jobs (a cancelled job still running at its deadline) | {a['leaks']} |"
            f" 0: {_met(result['targets']['leaks'])} |",
            f"| RSS at start / after the first tenth of the run / at the end / max | {_cell(rss['at_start'])} /"
            f" {_cell(rss['after_first_tenth'])} / {_cell(rss['at_end'])} / {_cell(rss['max'])} MB |"
            f" flat (≤ 5 % growth after the first tenth): {_met(result['targets']['rss_flat'])} |",
            f"| RSS growth after the first tenth / slope over it | {_cell(rss['growth_after_first_tenth'])} MB /"
            f" {_cell(rss['slope_mb_per_hour'])} MB per hour | |",
            f"| event log | {result['log_bytes'] / 1e6:.2f} MB, {_cell(result['log_mb_per_hour'])} MB per hour | |",
            f"| missed talk-overs | {a['missed']} of {a['talk_overs']} | |",
            f"| self-interruptions / self-replies (echo / all) | {a['self_interruptions']} / {a['self_replies_echo']}"
            f" / {a['self_replies']} | |",
            f"| onset → silence p50 / p95 (n) | {_cell(silence['p50'])} / {_cell(silence['p95'])} ms ({silence['n']}) |"
            " |",
            f"| stop phrases honoured / answered | {a['stop_phrases_honoured']} of {a['stop_phrases']} /"
            f" {a['stop_phrases_answered']} | |",
            f"| wake-word questions answered | {a['questions_answered']} of {a['questions']} | |",
            f"| stories ended by a mute after a miss | {a['rescued_by_mute']} | |",
            f"| xruns in the event log / latency steps up / down / ALSA underruns on stderr | {a['xruns_logged']} /"
            f" {a['latency_raises']} / {a['latency_lowerings']} / {a['underruns_reported']} | |",
            f"| mic audio Spine's capture dropped | {a['mic_lost_s']} s | |",
            "",
            *_missed_lines(result["missed_over_the_run"]),
            "Each conversation's row, with the same definitions, is in the JSON beside this file.",
            "",
        ]
    )


def _missed_lines(over_the_run: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Whether hearing held over the hour: missed talk-overs by quarter, and by the load before each conversation."""
    quarters = over_the_run["by_quarter"]
    lines = [
        "Missed talk-overs over the run (a rise across the quarters at the same load is hearing losing to time; a",
        "rise with the load is the machine):",
        "",
        "| | " + " | ".join(f"quarter {q}" for q in range(1, 5)) + " |",
        "|---|" + "---|" * 4,
        "| missed / talk-overs | " + " | ".join(f"{q['missed']} of {q['talk_overs']}" for q in quarters) + " |",
        "| load average, median | " + " | ".join(_cell(q["load_median"]) for q in quarters) + " |",
        "",
    ]
    if over_the_run["by_load"]:
        lines += ["| load average (1 min, 2 cores) | missed / talk-overs |", "|---|---|"]
        for band in over_the_run["by_load"]:
            span = f"{band['from']:g} and above" if band["below"] is None else f"{band['from']:g} to {band['below']:g}"
            lines.append(f"| {span} | {band['missed']} of {band['talk_overs']} |")
        lines.append("")
    return lines


def judged_again(hour_json: Path) -> dict[str, Any]:
    """The soak's figures from the analysed session its JSON keeps, judged by the rules of this version (the
    measured samples do not change when a rule does; an event log written by an older version cannot be read
    again, but its analysis can be judged again)."""
    from device.rates import SPINE_RATE_HZ

    stored = json.loads(hour_json.read_text(encoding="utf-8"))
    return hour_result(stored["session"], SPINE_RATE_HZ)


def quoted_lines(hour_json: Path) -> list[str]:
    """The soak's figures as docs/reliability.md quotes them, from the JSON `spine bench realstream --hour` wrote."""
    if not hour_json.exists():
        return ["## Real-stream hour", "", f"Not run yet: `spine bench realstream --hour` writes {hour_json}."]
    result = judged_again(hour_json)
    a, rss, targets = result["aggregate"], result["rss_mb"], result["targets"]
    return [
        "## Real-stream hour",
        "",
        f"`spine run` on the PulseAudio room for {result['minutes']} minutes, {result['conversations']} talked-over",
        f"conversations (`spine bench realstream --hour`; every figure and row: {hour_json.with_suffix('.md')}).",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| stuck (not idle 40 s after a conversation) | {result['stuck']} | 0: {_met(targets['stuck'])} |",
        f"| leaked jobs | {a['leaks']} | 0: {_met(targets['leaks'])} |",
        f"| RSS after the first tenth → end (max) | {_cell(rss['after_first_tenth'])} →"
        f" {_cell(rss['at_end'])} MB ({_cell(rss['max'])}) | flat: {_met(targets['rss_flat'])} |",
        f"| event log | {_cell(result['log_mb_per_hour'])} MB per hour (bounded by `[log] keep_mb`) | |",
        f"| missed talk-overs / self-interruptions / echo self-replies | {a['missed']} of {a['talk_overs']} /"
        f" {a['self_interruptions']} / {a['self_replies_echo']} | |",
    ]
