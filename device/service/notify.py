"""sd_notify through systemd-python: what `spine run` tells systemd (a `Type=notify` unit), and how it says it.

    READY=1      the models are loaded and the sound card's stream runs - or it could not be opened and the spine
                 is Degraded, retrying with back-off (STATUS= says why): a daemon correctly waiting for a USB
                 microphone must not be killed by the unit's start timeout
    STATUS=...   the current state, with its turn (`systemctl status spine` shows it); sent on each change
    WATCHDOG=1   the spine is alive by the watchdog's rule (device/service/watchdog.py), every half interval
    STOPPING=1   the stop has begun

With no `NOTIFY_SOCKET` (not started by systemd) nothing is sent and systemd-python is not even imported. With
one but without systemd-python (a development machine), sending is a no-op, said once on stderr.

A message is one datagram; sending never waits for systemd to read it, so the FSM thread may send one (READY,
STOPPING) - STATUS and WATCHDOG go from the service thread (device/service/service_thread.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from device.core.states import Degraded, State

MAX_VALUE_CHARS = 300
"""A STATUS line longer than this is cut (systemctl shows one line; a sound server's error can be long)."""

Send = Callable[[str], object]


def notify_message(*assignments: tuple[str, str]) -> str:
    """`VARIABLE=value` lines as sd_notify takes them; a newline in a value would start a new assignment, so
    values are made one line (and cut to `MAX_VALUE_CHARS`)."""
    lines = []
    for name, value in assignments:
        flat = " ".join(value.split())
        if len(flat) > MAX_VALUE_CHARS:
            flat = flat[: MAX_VALUE_CHARS - 1] + "…"
        lines.append(f"{name}={flat}")
    return "\n".join(lines)


def state_turn(state: State) -> int | None:
    """The turn a state belongs to, if it has one."""
    turn = getattr(state, "turn", None)
    return turn if isinstance(turn, int) else None


def status_text(state: State) -> str:
    """What `STATUS=` says for a state: its name, its turn, and for Degraded why and which attempt."""
    name = type(state).__name__
    if isinstance(state, Degraded):
        return f"{name}: {state.reason} (reopening the sound card, attempt {state.attempt})"
    turn = state_turn(state)
    return name if turn is None else f"{name} (turn {turn})"


def ready_message(state: State) -> str:
    return notify_message(("READY", "1"), ("STATUS", status_text(state)))


class Notifier:
    """Sends sd_notify messages to `NOTIFY_SOCKET`; a no-op when there is none or systemd-python is missing."""

    def __init__(self, environ: Mapping[str, str], warn: Callable[[str], None], send: Send | None = None) -> None:
        """`warn` says once that messages cannot be sent; `send` replaces systemd.daemon.notify (tests)."""
        self._send: Send | None = None
        if environ.get("NOTIFY_SOCKET"):
            self._send = send or _systemd_notify(warn)
        self.enabled = self._send is not None

    def send(self, message: str) -> None:
        if self._send is not None:
            self._send(message)


def _systemd_notify(warn: Callable[[str], None]) -> Send | None:
    try:
        import systemd.daemon as daemon
    except ImportError:
        warn(
            "NOTIFY_SOCKET is set but the systemd-python module is missing: systemd hears nothing from spine "
            "(install it with `pip install systemd-python`, which builds against libsystemd-dev)"
        )
        return None

    def send(message: str) -> object:
        return daemon.notify(message)

    return send
