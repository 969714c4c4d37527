"""`spine bench latency`'s measures: each stage of a turn in ms, their p50/p95, and the verdict on the target.

The stages and where each is measured from and to: device/bench/latency.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from device.bench.tables import percentile
from device.rates import SPINE_RATE_HZ as RATE_HZ
from device.runtime.eventlog import LoggedStep
from device.sim.speech import synthesize
from device.sim.summary import TurnMarks, between_ms, turn_marks

BUDGET_MS = 250.0
"""What the target allows beyond the model's first-token delay, from the endpoint decision to first audio."""

STAGES = ("endpointing", "asr", "reply_first_text", "first_sentence", "tts_first_chunk", "to_speaker", "other")
"""The stages of a turn, in order; `endpointing` is before the endpoint decision, the rest after it."""
MEASURES = ("speech_end_to_first_audio", "endpoint_to_first_audio", *STAGES, "asr_run")
"""`asr_run` is not a stage: the transcription's own run, which starts at the user's pause when it is early."""
MODEL_STAGE = "reply_first_text"

VOICE_FLOOR_DB = -40.0
"""A 10 ms frame is voice while its RMS is within this of the clip's loudest frame (for the true voice end)."""


def trailing_silence_ms(text: str, voice: str, gain_db: float) -> float:
    """How long the synthesised clip goes on after its last voiced 10 ms frame (espeak-ng pads its clips)."""
    audio = synthesize(text, voice, rate_hz=RATE_HZ, gain_db=gain_db).astype(np.float64)
    frame = RATE_HZ // 100
    frames = audio[: len(audio) // frame * frame].reshape(-1, frame)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    if not len(rms) or rms.max() <= 0:
        return 0.0
    voiced = np.flatnonzero(rms >= rms.max() * 10 ** (VOICE_FLOOR_DB / 20))
    return round((len(audio) - (int(voiced[-1]) + 1) * frame) * 1000 / RATE_HZ, 1)


def turn_rows(summary: dict[str, Any], steps: Iterable[LoggedStep], tails_ms: dict[str, float]) -> list[dict[str, Any]]:
    """One row per transcribed turn: what was said and heard, and each measure in ms (None: not reached).

    The stages summary.json already has (ASR, first text, first chunk) are taken from it; the others come from
    the same marks of the event log that summary.json is made of (`device.sim.summary.turn_marks`)."""
    marks = turn_marks(steps)
    rows = []
    for row in summary["turns"]:
        m = marks.get(row["turn"], TurnMarks(row["turn"]))
        latency = row["latency_ms"]
        endpoint_to_audio = row["endpoint_to_first_audio_ms"]
        first_audio = None
        if endpoint_to_audio is not None and m.endpoint_decided is not None:
            first_audio = m.endpoint_decided + round(endpoint_to_audio * RATE_HZ / 1000)
        clip_end_to_audio = row["speech_end_to_first_audio_ms"]
        tail = tails_ms.get(row["said"], 0.0)
        speech_end_to_audio = None if clip_end_to_audio is None else round(clip_end_to_audio + tail, 1)
        ms: dict[str, float | None] = {
            "speech_end_to_first_audio": speech_end_to_audio,
            "endpoint_to_first_audio": endpoint_to_audio,
            "endpointing": None
            if speech_end_to_audio is None or endpoint_to_audio is None
            else round(speech_end_to_audio - endpoint_to_audio, 1),
            "asr": latency["asr_after_endpoint"],
            "reply_first_text": latency["reply_first_text"],
            "first_sentence": between_ms(m.first_text_at, m.first_tts_started),
            "tts_first_chunk": latency["tts_first_chunk"],
            "to_speaker": between_ms(m.first_chunk_at, first_audio),
            "asr_run": latency["asr"],
        }
        parts = [ms[s] for s in STAGES[1:-1]]
        ms["other"] = (
            None
            if endpoint_to_audio is None or None in parts
            else (round(endpoint_to_audio - sum(p for p in parts if p is not None), 1))
        )
        rows.append(
            {
                "turn": row["turn"],
                "said": row["said"],
                "transcript": row["transcript"],
                "wer": row["wer"],
                "reply_text": row["reply_text"],
                "answered": bool(row["transcript"].strip()) and first_audio is not None,
                "ms": ms,
            }
        )
    return rows


def _stats(turns: list[dict[str, Any]], measure: str) -> dict[str, Any]:
    values = [float(t["ms"][measure]) for t in turns if t["answered"] and t["ms"][measure] is not None]
    return {"n": len(values), "p50": percentile(values, 0.5), "p95": percentile(values, 0.95)}


def backend_result(
    turns: list[dict[str, Any]],
    run_rows: list[dict[str, Any]],
    crashes: list[dict[str, Any]],
    first_token_ms: float | None,
) -> dict[str, Any]:
    stats = {measure: _stats(turns, measure) for measure in MEASURES}
    target = _verdict(stats, first_token_ms)
    return {"stats": stats, "target": target, "runs": run_rows, "crashed_runs": crashes, "turns": turns}


def _verdict(stats: dict[str, Any], first_token_ms: float | None) -> dict[str, Any]:
    """Does endpoint -> first audio stay within first token + 250 ms, and if not, where does the time go?"""
    measured_first = stats[MODEL_STAGE]["p50"]
    first = first_token_ms if first_token_ms is not None else measured_first or 0.0
    target = round(first + BUDGET_MS, 1)
    total = stats["endpoint_to_first_audio"]
    # Everything after the endpoint decision but the model's own first-token delay must fit in the budget.
    outside = {s: stats[s]["p50"] for s in STAGES[1:] if s != MODEL_STAGE and stats[s]["p50"] is not None}
    if first_token_ms is not None and measured_first is not None:
        outside["model_overhead"] = round(measured_first - first, 1)  # the client and HTTP, beyond the model
    ranked = sorted(outside.items(), key=lambda kv: -kv[1])
    return {
        "first_token_ms": first,
        "first_token_source": "configured" if first_token_ms is not None else "measured p50",
        "budget_ms": BUDGET_MS,
        "target_ms": target,
        "holds_p50": total["p50"] is not None and total["p50"] <= target,
        "holds_p95": total["p95"] is not None and total["p95"] <= target,
        "outside_model_p50_ms": round(sum(outside.values()), 1),
        "outside_model_p50_by_stage_ms": dict(ranked),
        "over_budget_alone": [s for s, v in ranked if v > BUDGET_MS],
    }
