"""The spine's loop: every event is logged, stepped, and its commands executed - in that order, one at a time.

`SpineLoop.handle` is the only caller of `step()`. The inbox is the only way in from other threads.
"""

from __future__ import annotations

import queue

from device.core.events import Event
from device.core.machine import step
from device.core.states import Spine, State
from device.runtime.eventlog import EventLog
from device.runtime.executor import Executor


class Inbox:
    """Events posted by other threads (workers, the audio side); the FSM thread drains it."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()

    def post(self, event: Event) -> None:
        self._queue.put(event)

    def drain(self) -> list[Event]:
        out: list[Event] = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def wait(self, timeout_s: float) -> Event | None:
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None


class SpineLoop:
    def __init__(self, spine: Spine, log: EventLog, executor: Executor) -> None:
        self.spine = spine
        self._log = log
        self._executor = executor
        self.steps = 0

    @property
    def state(self) -> State:
        return self.spine.state

    def handle(self, event: Event, now: int) -> None:
        self._log.event(now, event)
        self.spine, commands = step(self.spine, event, now)
        self._log.outcome(now, type(self.spine.state).__name__, commands)
        self._executor.execute(commands, now)
        self.steps += 1
