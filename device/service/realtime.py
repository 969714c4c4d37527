"""What to say about the audio callback thread's real-time priority (`[audio] realtime_priority`).

The callback asks for SCHED_FIFO itself, once per stream, on its first period (device/audio/stream.py: on Linux
`os.sched_setscheduler(0, ...)` applies to the calling thread, and PortAudio's thread is only reachable from
inside the callback). It does no I/O there: it records the outcome, and the FSM thread hands it here to be
logged once. Refused, the spine carries on at normal priority: it works, with more risk of an xrun under load.
"""

from __future__ import annotations

import errno

from device.audio.stream import RealtimeOutcome
from device.service.journal import Level


def describe_realtime(outcome: RealtimeOutcome) -> tuple[Level, str]:
    """The log line for what the callback's request got (granted: info; refused: a warning saying how to fix)."""
    if outcome.error == 0:
        return "info", f"audio callback thread runs at SCHED_FIFO priority {outcome.priority}"
    name = errno.errorcode.get(outcome.error, str(outcome.error))
    how = (
        f"allow it with LimitRTPRIO={outcome.priority} in the unit (or an rtprio limit in "
        "/etc/security/limits.d/ for a user), or set [audio] realtime_priority = 0 to stop asking"
        if outcome.error == errno.EPERM
        else "set [audio] realtime_priority = 0 to stop asking"
    )
    return "warning", f"SCHED_FIFO refused ({name}): the audio callback runs at normal priority; {how}"
