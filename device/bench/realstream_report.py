"""The real-stream suite's aggregates over sessions (with and without load), judged against the targets of
issue 9, and its Markdown + JSON report (docs/real-stream.md)."""

from __future__ import annotations

from typing import Any

from device.bench.realstream_analysis import OFFSETS_S
from device.bench.tables import percentile
from device.bench.tables import table_cell as _cell


def result_of(sessions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "sessions": sessions,
        "aggregates": {"load": aggregate(sessions, True), "no_load": aggregate(sessions, False)},
    }


TARGETS = {
    "self_interruptions": 0,
    "self_replies": 0,
    "missed_fraction": 0.05,
    "onset_to_silence_p95_ms": 200.0,
}


def aggregate(sessions: list[dict[str, Any]], load: bool) -> dict[str, Any]:
    mine = [s for s in sessions if s["load"] == load]
    rows = [c for s in mine for c in s["conversations"]]
    talked = [c for c in rows if c["status"] == "talked over"]
    silences = [float(c["onset_to_silence_ms"]) for c in talked if c["onset_to_silence_ms"] is not None]
    missed = sum(1 for c in talked if not c["interrupted"])
    stops = [c for c in talked if c["kind"] == "stop"]
    questions = [c for c in talked if c["kind"] == "question"]
    self_interruptions = sum(len(s["self_interruptions"]) for s in mine)
    self_replies = [r for s in mine for r in s["self_replies"]]
    p95 = percentile(silences, 0.95)
    by_offset = {
        str(o): {
            "n": len(at := [c for c in talked if c["planned_offset_s"] == o]),
            "missed": sum(1 for c in at if not c["interrupted"]),
            "p50_ms": percentile([c["onset_to_silence_ms"] for c in at if c["onset_to_silence_ms"] is not None], 0.5),
        }
        for o in OFFSETS_S
    }
    first = [c for c in talked if c["first_after_start"]]
    with_wake = [c for c in talked if c.get("wake_heard") is not None]
    return {
        "sessions": len(mine),
        "conversations_planned": len(rows) + sum(s["unsettled"] for s in mine),
        "talk_overs": len(talked),
        "not_talked_over": {
            "request_not_answered": sum(1 for c in rows if c["status"].startswith("not started")),
            "no_story": sum(1 for c in rows if c["status"] == "no story"),
            "story_cut_before_the_talk_over": sum(1 for c in rows if c["status"] == "story cut before the talk-over"),
            "spine_never_idle": sum(s["unsettled"] for s in mine),
        },
        "onset_to_silence_ms": {"n": len(silences), "p50": percentile(silences, 0.5), "p95": p95},
        "missed": missed,
        "missed_first_after_start": sum(1 for c in first if not c["interrupted"]),
        "first_after_start": len(first),
        "stop_phrases": len(stops),
        "stop_phrases_honoured": sum(1 for c in stops if c["honoured"]),
        "stop_phrases_answered": sum(1 for c in stops if c["replies_after"]),
        "questions": len(questions),
        "questions_answered": sum(1 for c in questions if c["honoured"]),
        "wake_talk_overs": len(with_wake),
        "wake_heard": sum(1 for c in with_wake if c["wake_heard"]),
        "self_interruptions": self_interruptions,
        "self_replies": len(self_replies),
        "self_replies_echo": sum(1 for r in self_replies if r["cause"] == "echo"),
        "pauses": sum(c["pauses"] for c in talked),
        "resumes_while_user_talked": sum(c["resumes_while_talking"] for c in talked),
        "leaks": sum(s["leaks"] for s in mine),
        "underruns_reported": sum(s["underruns_reported"] for s in mine),
        "xruns_logged": sum(s.get("xruns_logged", 0) for s in mine),
        "latency_raises": sum(s.get("latency_raises", 0) for s in mine),
        "latency_lowerings": sum(s.get("latency_lowerings", 0) for s in mine),
        "rescued_by_mute": sum(s["rescues"] for s in mine),
        "machine_load_average_median": percentile([x for s in mine for x in s.get("load_averages", [])], 0.5),
        "mic_lost_s": round(sum(s.get("mic_lost_s") or 0.0 for s in mine), 3),
        "hearing_lag_ms": {
            "p50_of_sessions": percentile(
                [s["hearing_lag_ms"]["p50"] for s in mine if s["hearing_lag_ms"]["p50"]], 0.5
            ),
            "max": max(
                (s["hearing_lag_ms"]["max"] for s in mine if s["hearing_lag_ms"]["max"] is not None), default=None
            ),
        },
        "by_offset_s": by_offset,
        "targets": {
            "self_interruptions": self_interruptions <= TARGETS["self_interruptions"],
            "self_replies": len(self_replies) <= TARGETS["self_replies"],
            "missed": bool(talked) and missed <= TARGETS["missed_fraction"] * len(talked),
            "onset_to_silence_p95": p95 is not None and p95 <= TARGETS["onset_to_silence_p95_ms"],
        },
    }


def _met(value: bool) -> str:
    return "**met**" if value else "**missed**"


def report_markdown(result: dict[str, Any], command: str) -> str:
    load, idle = result["aggregates"]["load"], result["aggregates"]["no_load"]
    lines = [
        "# Real-stream suite: `spine run` talked over on a PulseAudio room",
        "",
        f"Generated by `{command}` (`--reanalyse` rewrites it from the sessions kept in `out/realstream/`).",
        "",
        "`spine run` (real models, 48 kHz device rate, default configuration) on a private PulseAudio room",
        "(`scripts/pulse-null-sink.sh start --room`):",
        "",
        "```",
        "spine run ──► spine_speaker ──► left  ┐",
        "                                      ├─ spine_room (stereo) ─► monitor ─► recording (left | right)",
        "espeak-ng ──► spine_user    ──► right ┘        │",
        "  (pacat)                                       └─► spine_mic = left + right (0 dB each) ──► spine run",
        "```",
        "",
        "Each session is one `spine run`; its first answer is the first after start (cold). In each conversation",
        "the user asks for a story and talks over it at the planned offset after the story's first sample. With",
        "load, `stress-ng --cpu 2` runs for the whole session (bounded, killed at its end). A story that outlives",
        "its talk-over by 8 s is ended by muting Spine (not counted as a decision). Definitions:",
        "`device/bench/realstream_analysis.py`. The machine's own load average and how far Spine's hearing ran",
        "behind the room are in the table: on a shared machine they, not the detector, can decide the numbers.",
        "",
        "## Aggregates",
        "",
        "| measure | with load | without load | target (issue 9) |",
        "|---|---|---|---|",
        f"| sessions / conversations planned / talk-overs | {load['sessions']} / {load['conversations_planned']} /"
        f" {load['talk_overs']} | {idle['sessions']} / {idle['conversations_planned']} / {idle['talk_overs']} |"
        f" ≥ 20 with load: {_met(load['talk_overs'] >= 20)} |",
        f"| self-interruptions (pause/cut, no user audio) | {load['self_interruptions']} |"
        f" {idle['self_interruptions']} | 0: {_met(load['targets']['self_interruptions'])} |",
        f"| self-replies (echo / all) | {load['self_replies_echo']} / {load['self_replies']} |"
        f" {idle['self_replies_echo']} / {idle['self_replies']} | 0: {_met(load['targets']['self_replies'])} |",
        f"| missed talk-overs | {load['missed']} of {load['talk_overs']} | {idle['missed']} of {idle['talk_overs']}"
        f" | ≤ 5 %: {_met(load['targets']['missed'])} |",
        f"| missed, first answer after start | {load['missed_first_after_start']} of {load['first_after_start']} |"
        f" {idle['missed_first_after_start']} of {idle['first_after_start']} | |",
        f"| onset → silence p50 / p95 (n) | {_cell(load['onset_to_silence_ms']['p50'])} /"
        f" {_cell(load['onset_to_silence_ms']['p95'])} ms ({load['onset_to_silence_ms']['n']}) |"
        f" {_cell(idle['onset_to_silence_ms']['p50'])} / {_cell(idle['onset_to_silence_ms']['p95'])} ms"
        f" ({idle['onset_to_silence_ms']['n']}) | p95 ≤ 200 ms: {_met(load['targets']['onset_to_silence_p95'])} |",
        f"| stop phrases honoured (cut, not answered) / answered | {load['stop_phrases_honoured']} of"
        f" {load['stop_phrases']} / {load['stop_phrases_answered']} | {idle['stop_phrases_honoured']} of"
        f" {idle['stop_phrases']} / {idle['stop_phrases_answered']} | |",
        f"| wake-word questions answered | {load['questions_answered']} of {load['questions']} |"
        f" {idle['questions_answered']} of {idle['questions']} | |",
        f"| wake word heard over the story (talk-overs that begin with it) | {load['wake_heard']} of"
        f" {load['wake_talk_overs']} | {idle['wake_heard']} of {idle['wake_talk_overs']} | |",
        f"| pauses during talk-overs / resumes while the user talked | {load['pauses']} /"
        f" {load['resumes_while_user_talked']} | {idle['pauses']} / {idle['resumes_while_user_talked']} | |",
        "| not talked over: request unanswered / story cut before / never idle | "
        + " / ".join(str(v) for k, v in load["not_talked_over"].items() if k != "no_story")
        + " | "
        + " / ".join(str(v) for k, v in idle["not_talked_over"].items() if k != "no_story")
        + " | |",
        f"| stories ended by a mute after a miss | {load['rescued_by_mute']} | {idle['rescued_by_mute']} | |",
        "| leaked jobs / xruns in the event log / stream reopens a latency step up / ALSA underruns on stderr |"
        f" {load['leaks']} / {load['xruns_logged']} / {load['latency_raises']} / {load['underruns_reported']} |"
        f" {idle['leaks']} / {idle['xruns_logged']} / {idle['latency_raises']} / {idle['underruns_reported']} | |",
        f"| machine's 1-min load average before a conversation (median; 2 cores) |"
        f" {_cell(load['machine_load_average_median'])} | {_cell(idle['machine_load_average_median'])} | |",
        f"| mic audio Spine's capture dropped (sum over sessions) | {load['mic_lost_s']} s |"
        f" {idle['mic_lost_s']} s | |",
        f"| hearing behind the room: median of sessions' p50 / max | {_cell(load['hearing_lag_ms']['p50_of_sessions'])}"
        f" / {_cell(load['hearing_lag_ms']['max'])} ms | {_cell(idle['hearing_lag_ms']['p50_of_sessions'])} /"
        f" {_cell(idle['hearing_lag_ms']['max'])} ms | |",
        "",
        "The targets are judged on the sessions with load. Missed by offset into the story (with load; without):",
        "",
        "| offset s | " + " | ".join(str(o) for o in OFFSETS_S) + " |",
        "|---|" + "---|" * len(OFFSETS_S),
        "| missed / n, p50 ms | "
        + " | ".join(
            f"{load['by_offset_s'][str(o)]['missed']}/{load['by_offset_s'][str(o)]['n']},"
            f" {_cell(load['by_offset_s'][str(o)]['p50_ms'])}; {idle['by_offset_s'][str(o)]['missed']}/"
            f"{idle['by_offset_s'][str(o)]['n']}, {_cell(idle['by_offset_s'][str(o)]['p50_ms'])}"
            for o in OFFSETS_S
        )
        + " |",
        "",
        "## Conversations",
        "",
        "Offset: planned / measured (the story's first sample to the user's). Echo/user: Spine's active level in",
        "the second before the onset over the user's (frames within 20 dB of the loudest; pauses do not count).",
        "",
        "| session | load | # | talk-over | offset s | echo/user dB | interrupted | onset → silence ms | pauses |"
        " honoured | replies asked after it |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for number, session in enumerate(result["sessions"]):
        for c in session["conversations"]:
            if c["status"] != "talked over":
                lines.append(f"| {number} | {_cell(session['load'])} | {c['conversation']} | {c['status']} |"
                             + " |" * 7)  # fmt: skip
                continue
            lines.append(
                "| "
                + " | ".join(
                    _cell(v)
                    for v in (
                        number,
                        session["load"],
                        f"{c['conversation']}{' (first)' if c['first_after_start'] else ''}",
                        repr(c["text"]),
                        f"{c['planned_offset_s']} / {_cell(c['offset_s'])}",
                        c["echo_to_user_db"],
                        c["interrupted"],
                        c["onset_to_silence_ms"],
                        c["pauses"],
                        c["honoured"],
                        "; ".join(repr(p) for p in c["replies_after"]) or "none",
                    )
                )
                + " |"
            )
    lines += ["", "## Self-interruptions and self-replies", ""]
    for number, session in enumerate(result["sessions"]):
        for item in session["self_interruptions"]:
            lines.append(f"- session {number}: {item['kind']} at {item['at_s']} s with no user audio sounding")
        for item in session["self_replies"]:
            lines.append(
                f"- session {number}: reply asked at {item['at_s']} s for {item['prompt']!r} ({item['cause']})"
            )
    if lines[-1] == "":
        lines.append("None.")
    return "\n".join(lines) + "\n"
