"""The spine's loop: every event is logged, stepped, and its commands executed - in that order, one at a time.

`SpineLoop.handle` is the only caller of `step()`. The inbox is the only way in from other threads. What drives
`handle` (hearing, the inbox, timers, the card) is the FSM thread's round: device/runtime/fsm_thread.py.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable
from typing import Protocol

from device.core.commands import Command
from device.core.events import Event, PlaybackDrained, PlaybackStopped
from device.core.machine import step
from device.core.states import Spine, State
from device.runtime.eventlog import EventLog


class Inbox:
    """Events posted by other threads (workers, the audio side); the FSM thread drains it.

    A `queue.Queue`, not a `queue.SimpleQueue`: on CPython 3.11 `SimpleQueue.get(timeout=)` interrupted by a signal
    recomputes its deadline after the handler and, when that has already passed, waits with a negative timeout,
    which means for ever - until something is posted. Under CPU load a SIGTERM or SIGUSR1 landing in the loop's
    half-period wait froze the FSM thread (idle listening posts nothing): `spine run` ignored the stop and
    systemd's mute (1 of 10 stops under `stress-ng --cpu 2`; a CI run failed on it). `Queue.get` waits on a
    `threading.Lock`, whose timed acquire treats a passed deadline as a timeout (tests/test_inbox_signals.py)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Event] = queue.Queue()

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


Observer = Callable[[int, Event, str, tuple[Command, ...]], None]
"""Sees each step once it is done: (now, event, the new state's name, the commands executed), the same as the log.

Observers run on the FSM thread, inside `handle`, after the commands were executed and before the next event:
they must be quick and must never block or raise (no I/O that can wait, no lock another thread may hold for
long). One that needs more hands the step to its own thread (e.g. `queue.Queue.put`) and returns."""


class Executes(Protocol):
    """What the loop needs of the executor (device/runtime/executor.py): carry out commands, hear of an ended epoch."""

    def execute(self, commands: tuple[Command, ...], now: int) -> None: ...

    def playback_ended(self, epoch: int) -> None: ...


class NothingStarted:
    """The executor of a run stopped before its organs exist (`spine run` stopped while loading the models): the
    only event it steps is `StopRequested` from the initial state, and that commands nothing (nothing plays, no
    work or alarm is running). A command here is a bug, and says so."""

    def execute(self, commands: tuple[Command, ...], now: int) -> None:
        if commands:
            raise AssertionError(f"commands before anything started: {commands}")

    def playback_ended(self, epoch: int) -> None:
        raise AssertionError(f"epoch {epoch} ended before anything started")


class SpineLoop:
    def __init__(self, spine: Spine, log: EventLog, executor: Executes, observers: Iterable[Observer] = ()) -> None:
        self.spine = spine
        self._log = log
        self._executor = executor
        self.observers = list(observers)
        self.steps = 0
        """Steps taken so far (written by the FSM thread only; see `Liveness`)."""

    @property
    def state(self) -> State:
        return self.spine.state

    def handle(self, event: Event, now: int) -> None:
        self._log.event(now, event)
        self.spine, commands = step(self.spine, event, now)
        state_name = type(self.spine.state).__name__
        self._log.outcome(now, state_name, commands)
        if isinstance(event, PlaybackDrained | PlaybackStopped):
            self._executor.playback_ended(event.epoch)  # before its commands: one may start the next chime
        self._executor.execute(commands, now)
        self.steps += 1
        for observe in self.observers:
            observe(now, event, state_name, commands)
