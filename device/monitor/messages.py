"""The monitor's records as the JSON messages a browser receives on the data channel.

Every message has a `kind`: `hello` (once, on open: the state, the access, recent steps), `step` (an event,
the state before and after, the commands; `observed_unix_ms` is when the FSM thread's observer saw it),
`levels` (meters, VAD probability, wake score, ERLE), `control_result` and `error` (answers to what the browser
sent).
"""

from __future__ import annotations

import json
from typing import Any

from device.core import codec
from device.monitor.feed import LevelsRecord, Record, StepRecord


def record_message(record: Record, rate_hz: int) -> dict[str, Any]:
    if isinstance(record, StepRecord):
        return {
            "kind": "step",
            "t": record.t,
            "t_s": round(record.t / rate_hz, 3),
            "event": codec.encode(record.event),
            "from": record.previous_state,
            "state": record.state,
            "commands": codec.encode(record.commands),
            "observed_unix_ms": round(record.observed_unix_s * 1000, 3),
        }
    assert isinstance(record, LevelsRecord)
    return {
        "kind": "levels",
        "t": record.t,
        "mic_dbfs": record.mic_dbfs,
        "cleaned_dbfs": record.cleaned_dbfs,
        "speaker_dbfs": record.speaker_dbfs,
        "vad_probability": round(record.vad_probability, 3),
        "wake_score": round(record.wake_score, 3),
        "erle_db": record.erle_db,
    }


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def error_message(text: str) -> str:
    return dumps({"kind": "error", "error": text})
