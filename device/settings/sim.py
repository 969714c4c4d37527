"""Settings of the simulated room (`[sim]`): what the jobs cost in virtual time, and how long a scene runs.

Part of the settings' one home (device/config.py); a leaf like it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from device.tomlfile import checked_by, within

START_TIME_EXAMPLE = "2026-11-25T09:41:00"


def iso_datetime_problem(value: object) -> str | None:
    """Why `value` is not a date and time `datetime.fromisoformat` reads (what the daemon does with it), or None."""
    try:
        datetime.fromisoformat(str(value))
    except ValueError:
        return f'`start_time` must be a date and time in ISO 8601, like "{START_TIME_EXAMPLE}"; got "{value}"'
    return None


@dataclass(frozen=True)
class SimConfig:
    """Costs model the jobs in virtual time (measured on x86)."""

    asr_fixed_ms: float = field(default=80.0, metadata=within(0.0, 60000.0))
    """Speech-to-text time per transcription, in milliseconds, on top of `asr_rtf`."""
    asr_rtf: float = field(default=0.15, metadata=within(0.0, 10.0))
    """Speech-to-text time per second of audio, in seconds (a real-time factor)."""
    tts_fixed_ms: float = field(default=30.0, metadata=within(0.0, 60000.0))
    """Synthesis time per piece of text (a sentence or a first clause), in milliseconds, on top of `tts_rtf`."""
    tts_rtf: float = field(default=0.06, metadata=within(0.0, 10.0))
    """Synthesis time per second of synthesised audio, in seconds (a real-time factor)."""
    reply_first_token_ms: float = field(default=40.0, metadata=within(0.0, 60000.0))
    """Time from the request to the reply's first word, in milliseconds (then one word per `[reply]
    token_interval_ms`)."""
    cancel_ack_ms: float = field(default=10.0, metadata=within(0.0, 60000.0))
    """Time a cancelled job takes to acknowledge the cancel, in milliseconds."""
    idle_tail_s: float = field(default=3.0, metadata=within(0.0, 600.0))
    """With no `duration_s` in the scene, stop once its script is done and the assistant has been idle this
    long, in seconds."""
    max_duration_s: float = field(default=600.0, metadata=within(1.0, 86400.0))
    """A scene never runs longer than this, in seconds (a stuck assistant ends the run instead of hanging it)."""
    start_time: str = field(default=START_TIME_EXAMPLE, metadata=checked_by(iso_datetime_problem))
    """Local date and time at the scene's start in virtual time (so the time skill answers the same each run)."""
