"""Drives a simulated-room `Rig` in virtual time through the one loop `run_virtual` runs (FsmThread with
`VirtualTime`), with one addition: a test can inject an event at an exact boundary, chosen by a predicate over
what has happened so far.

The predicate is asked at every point where the loop could take an event in: after each card tick (one
period played and captured, before that period's events are handled) and after each handled event (its
commands executed, before the next event or tick). At the first point where it holds, the event is stepped
at that point's sample time like any other event. The loop then runs on until the assistant is quiet (idle,
nothing playing, no job or timer pending) and stops the rig.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from device.core import commands as cmd
from device.core.events import Event
from device.core.states import Idle, State
from device.runtime.fsm_thread import FsmThread
from device.runtime.jobs import VirtualRunner
from device.sim.clocks import VirtualTime
from device.sim.demo import Rig
from device.sim.scene import Scene

Point = Literal["tick", "event"]


@dataclass(frozen=True)
class Handled:
    """One step as the driver saw it: the event, the state it led to, the commands it executed."""

    t: int
    event: Event
    state: State
    commands: tuple[cmd.Command, ...]


@dataclass
class Injection:
    """Where the injected event went in, and the step it made."""

    t: int
    point: Point
    step: Handled
    played_before: int
    """The gate's played-sample cursor of the open epoch at the injection (0 if none is open)."""


@dataclass
class Driver:
    rig: Rig
    max_samples: int
    """The run ends here at the latest (a stuck assistant fails the test instead of hanging it)."""
    point: Point = "tick"
    handled: list[Handled] = field(default_factory=list)
    injection: Injection | None = None
    stopped_at: int | None = None
    _time: _DriverTime | None = None
    _when: Callable[[Driver], bool] | None = None
    _make: Callable[[int], Event] | None = None

    # ---------------------------------------------------------------------------------- what predicates see
    @property
    def now(self) -> int:
        return 0 if self._time is None else self._time.now()

    @property
    def state(self) -> State:
        return self.rig.loop.state

    @property
    def played(self) -> int:
        """Samples of the open epoch handed to the speaker so far (the gate's own cursor)."""
        return self.rig.gate.callback.played_samples

    def count(self, kind: type[Event]) -> int:
        return sum(isinstance(h.event, kind) for h in self.handled)

    def last_event_is(self, kind: type[Event]) -> bool:
        return self.point == "event" and isinstance(self.handled[-1].event, kind)

    def commands(self, kind: type[cmd.Command]) -> list[cmd.Command]:
        return [c for h in self.handled for c in h.commands if isinstance(c, kind)]

    # ---------------------------------------------------------------------------------- the loop
    def run(self, when: Callable[[Driver], bool], make: Callable[[int], Event]) -> None:
        """Run the scene; inject `make(now)` at the first point where `when(self)` holds; run on until quiet."""
        self._when, self._make = when, make
        self._time = _DriverTime(self)
        fsm = _DriverLoop(self, self._time)
        self.rig.loop.observers.append(self._observe)
        fsm.run("end")
        self.stopped_at = self.now

    def _observe(self, now: int, event: Event, _state: str, commands: tuple[cmd.Command, ...]) -> None:
        self.handled.append(Handled(now, event, self.rig.loop.state, commands))

    def maybe_inject(self, fsm: FsmThread) -> None:
        if self.injection is not None or self._when is None or self._make is None or not self._when(self):
            return
        point, played_before = self.point, self.played if self.rig.gate.busy() else 0
        FsmThread.step(fsm, self._make(self.now))  # the plain step: the injection is no point of its own
        self.injection = Injection(self.now, point, self.handled[-1], played_before)

    def quiet(self) -> bool:
        rig = self.rig
        runner = rig.runner
        assert isinstance(runner, VirtualRunner)
        return (
            isinstance(rig.loop.state, Idle)
            and not rig.gate.busy()
            and runner.idle()
            and rig.timers.armed() == 0
            and rig.card.player.done(self.now)
        )


class _DriverTime(VirtualTime):
    """Virtual time (no stalls) with the tick point, and the end: quiet after the injection, or `max_samples`."""

    def __init__(self, driver: Driver) -> None:
        super().__init__(driver.rig, Scene())
        self._driver = driver
        self.fsm: FsmThread | None = None

    def ticked(self) -> None:
        assert self.fsm is not None
        self._driver.point = "tick"
        self._driver.maybe_inject(self.fsm)

    def ended(self) -> bool:
        driver = self._driver
        return self.now() >= driver.max_samples or (driver.injection is not None and driver.quiet())

    def close(self) -> None:
        self._driver.rig.loop.observers.remove(self._driver._observe)  # the stop's step is not the run's


class _DriverLoop(FsmThread):
    """The one loop, with the event point: after each stepped event, before the next event or tick."""

    def __init__(self, driver: Driver, time: _DriverTime) -> None:
        super().__init__(driver.rig, time, time)
        time.fsm = self
        self._driver = driver

    def step(self, event: Event) -> None:
        super().step(event)
        self._driver.point = "event"
        self._driver.maybe_inject(self)
