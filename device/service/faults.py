"""Fault injection for tests only: `SPINE_FAULT` makes a running `spine run` fail on purpose, so a test can show
that the watchdog stops pinging systemd when the spine is really stuck (tests/test_service_notify.py, and the
systemd container test of the unit).

    SPINE_FAULT=freeze-fsm-after-s=2              the FSM loop blocks for good 2 s after READY
    SPINE_FAULT=stop-audio-callback-after-s=2     the audio callback stops delivering 2 s after READY
    SPINE_FAULT=hearing-raises-after-s=2          hearing raises on the FSM thread 2 s after READY
    SPINE_FAULT=freeze-fsm-after-s=5,stop-audio-callback-after-s=2    both (comma-separated)

Nothing else reads it and a device never sets it. It is read once, when `spine run` starts; a value it does not
understand is a one-line error, before anything loads.

What each fault models:
* `freeze-fsm`: a deadlock or an endless loop on the FSM thread. The loop blocks between two rounds and never
  comes back (it does not even see a stop: a real deadlock would not), while the audio callback, the workers and
  the watchdog's thread run on. Only SIGKILL (or systemd's watchdog abort) ends the process then.
* `stop-audio-callback`: a device that stops delivering periods (a USB microphone whose driver stalls). The
  callback returns at once, every period, without touching the rings or its counters: to the spine that is the
  same as PortAudio no longer calling it, but the stream can still be closed and reopened as a stalled real one
  can. (A callback that blocked instead would also block PortAudio's stop of the stream, which models a driver
  bug of its own, not the stall.) The fault lasts for the rest of the run, also through reopened streams: the
  spine sees the stall, goes Degraded and retries with back-off.
* `hearing-raises`: the wake word, voice or echo model raising inside a round (a bug, a runtime error of ONNX
  Runtime). Hearing the next period raises a RuntimeError; the run ends as any failing round does: the stop
  stepped with the failure as its reason, the card closed, exit 1 (and systemd restarts the service).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from device.errors import UserError

VARIABLE = "SPINE_FAULT"
KINDS = {
    "freeze-fsm-after-s": "the FSM loop blocks for good",
    "stop-audio-callback-after-s": "the audio callback stops delivering",
    "hearing-raises-after-s": "hearing raises on the FSM thread",
}
MAX_AFTER_S = 3600.0


@dataclass(frozen=True)
class Faults:
    """When each fault strikes, in seconds after READY; None: never (the normal case)."""

    freeze_fsm_after_s: float | None = None
    stop_audio_callback_after_s: float | None = None
    hearing_raises_after_s: float | None = None

    @property
    def any(self) -> bool:
        return any(
            after_s is not None
            for after_s in (self.freeze_fsm_after_s, self.stop_audio_callback_after_s, self.hearing_raises_after_s)
        )


NO_FAULTS = Faults()


def faults_from_environment(environ: Mapping[str, str]) -> Faults:
    """The faults `SPINE_FAULT` asks for (none when it is unset or empty); a bad value is a `UserError`."""
    text = environ.get(VARIABLE, "").strip()
    if not text:
        return NO_FAULTS
    found: dict[str, float] = {}
    for item in text.split(","):
        name, equals, value = item.strip().partition("=")
        if name not in KINDS:
            known = ", ".join(f"{kind}=SECONDS" for kind in KINDS)
            raise UserError(f"{VARIABLE}: unknown fault {name!r} (test-only; known: {known})")
        if name in found:
            raise UserError(f"{VARIABLE}: {name} is given twice")
        found[name] = _seconds(name, value if equals else "")
    return Faults(
        found.get("freeze-fsm-after-s"), found.get("stop-audio-callback-after-s"), found.get("hearing-raises-after-s")
    )


def _seconds(name: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= MAX_AFTER_S:  # also refuses nan
        raise UserError(f"{VARIABLE}: {name} needs seconds from 0 to {MAX_AFTER_S:g} (e.g. {name}=2), got {value!r}")
    return seconds
