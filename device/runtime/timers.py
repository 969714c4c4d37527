"""Armed timers, keyed by (kind, ref). The loop asks for the due ones; nothing here reads a clock."""

from __future__ import annotations

from device.core.events import TimerFired, TimerKind


class Timers:
    def __init__(self) -> None:
        self._due: dict[tuple[TimerKind, int], int] = {}

    def arm(self, kind: TimerKind, ref: int, due_sample: int) -> None:
        self._due.pop((kind, ref), None)  # re-arming moves it to the end: ties go in the order armed
        self._due[(kind, ref)] = due_sample

    def cancel(self, kind: TimerKind, ref: int) -> None:
        self._due.pop((kind, ref), None)

    def pop_due(self, now: int) -> list[TimerFired]:
        """Timers due at or before `now`, earliest first (ties in the order they were armed)."""
        due = sorted((t, i, key) for i, (key, t) in enumerate(self._due.items()) if t <= now)
        for _, _, key in due:
            del self._due[key]
        return [TimerFired(kind, ref) for _, _, (kind, ref) in due]

    def next_due(self) -> int | None:
        return min(self._due.values(), default=None)

    def armed(self) -> int:
        return len(self._due)
