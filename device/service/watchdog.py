"""The watchdog's rule: when `spine run` may tell systemd `WATCHDOG=1`, as a table of conditions.

systemd restarts a unit whose watchdog is not fed within `WatchdogSec=`; it passes the interval as
`WATCHDOG_USEC` (and `WATCHDOG_PID`, the process it means). The service thread checks every half interval and
pings only if, since its previous check, all of these hold (invariant 9, docs/architecture.md):

* the FSM loop ran a round: a loop that does not come round again is stuck (a deadlock, an endless loop);
* the audio callback delivered a period, and the loop heard one - unless the spine is Degraded: then it knows
  the card is gone and reopens it with back-off, each attempt logged and shown in STATUS=. A restart would only
  repeat that, and a restart loop would hit the unit's start limit and leave it failed for good, even after the
  user re-plugs the USB microphone;
* while something plays (a playout cursor at both checks): the cursor moved, or the speaker ran short of audio
  (an underrun: the gate plays what it has and waits for synthesis, or for a reply that streams slowly), or the
  spine paused playback on a hint of the user's voice (Paused holds the cursor by design). A cursor that stands
  still with audio to play is a stuck gate.

When it withholds a ping it says why once (and again only if the reason changes, or after pings resumed): never
once per check. The rule is pure: `Beat`s in, a verdict out; the clock is whatever `at_s` the caller gives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from device.errors import UserError


@dataclass(frozen=True)
class Beat:
    """What the watchdog reads at one check (each counter only ever grows, except the per-epoch cursor)."""

    at_s: float
    rounds: int
    """FSM loop rounds begun (`Liveness.rounds`)."""
    callback_periods: int
    """Periods the audio callback ran (`DuplexCallback.periods`)."""
    periods_heard: int
    """Mic periods the loop handed to hearing (`Liveness.periods_heard`)."""
    playout_samples: int | None
    """The playing epoch's cursor as of the last round; None while nothing plays."""
    underrun_samples: int
    """Samples the callback had to fill with silence while an epoch was open (it ran out of audio)."""
    state: str
    """The spine's state as the service last heard it from the loop's observer."""


def _rounds(was: Beat, now: Beat) -> bool:
    return now.rounds > was.rounds


def _callback(was: Beat, now: Beat) -> bool:
    return now.callback_periods > was.callback_periods or now.state == "Degraded"


def _heard(was: Beat, now: Beat) -> bool:
    return now.periods_heard > was.periods_heard or now.state == "Degraded"


def _playout(was: Beat, now: Beat) -> bool:
    if was.playout_samples is None or now.playout_samples is None:
        return True  # nothing played at one of the checks
    return (
        now.playout_samples != was.playout_samples  # moved (a new epoch starts its cursor at 0: any change counts)
        or now.underrun_samples > was.underrun_samples
        or now.state == "Paused"
    )


RULE: tuple[tuple[str, Callable[[Beat, Beat], bool]], ...] = (
    ("the FSM loop ran no round", _rounds),
    ("the audio callback delivered no period", _callback),
    ("the FSM loop heard no mic period", _heard),
    ("the playout cursor stood still with audio to play", _playout),
)
"""(why a ping is withheld, the condition that must hold), checked in this order."""


def withheld_because(was: Beat, now: Beat) -> str | None:
    """None if the spine earned a ping between the two checks; otherwise the first condition that failed."""
    for reason, holds in RULE:
        if not holds(was, now):
            return reason
    return None


@dataclass(frozen=True)
class Verdict:
    ping: bool
    say: str | None = None
    """A line for the log, when pings stop, their reason changes, or they resume."""


class Watchdog:
    """The rule over successive checks, remembering what it said so it says it once."""

    def __init__(self, first: Beat) -> None:
        self._was = first
        self._last_ping_s = first.at_s  # READY counts as one: systemd arms the watchdog there
        self._said: str | None = None  # the reason being withheld for, once said

    def check(self, now: Beat) -> Verdict:
        reason = withheld_because(self._was, now)
        self._was = now
        if reason is None:
            resumed = self._said is not None
            self._said = None
            self._last_ping_s = now.at_s
            return Verdict(True, "watchdog: pinging systemd again" if resumed else None)
        if reason == self._said:
            return Verdict(False)
        self._said = reason
        silent_s = now.at_s - self._last_ping_s
        return Verdict(False, f"watchdog: not pinging systemd: {reason} (last ping {silent_s:.1f} s ago, {now.state})")


def watchdog_interval_s(environ: Mapping[str, str], pid: int) -> float | None:
    """How often to check and ping (half of `WATCHDOG_USEC`), or None when no watchdog is asked of this process
    (unset, or `WATCHDOG_PID` names another one, as sd_watchdog_enabled(3) reads them)."""
    usec_text = environ.get("WATCHDOG_USEC", "").strip()
    if not usec_text:
        return None
    pid_text = environ.get("WATCHDOG_PID", "").strip()
    if pid_text:
        if not pid_text.isdigit():
            raise UserError(f"WATCHDOG_PID must be a process id, got {pid_text!r} (systemd sets it; unset it)")
        if int(pid_text) != pid:
            return None
    if not usec_text.isdigit() or int(usec_text) == 0:
        raise UserError(
            f"WATCHDOG_USEC must be a positive whole number of microseconds, got {usec_text!r} "
            "(systemd sets it from WatchdogSec=; unset it to run without a watchdog)"
        )
    return int(usec_text) / 1e6 / 2
