"""The simulated room's two clocks, each as the one loop's audio side and clock (device/runtime/fsm_thread.py).

* `VirtualTime`: the card ticks one period per round, as fast as the machine allows; the modelled workers'
  results and the timers come due in samples. The same scene gives a byte-identical `events.jsonl`.
* `WallTime`: the card paces itself in real time on its own thread; the loop's thread is the FSM thread.

A scene's `[[stall]]` freezes the FSM thread: in virtual time the card ticks on for the stall's length and plays
what is already in the playback ring (nothing tops it up: that is the frozen thread's job) while the mic periods
pile up; then the loop hears the backlog in order and steps everything at the current sample, as the real loop
(device/runtime/card.py) does after a stall. On the wall clock a stall is a real sleep of the FSM thread.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from device.config import samples
from device.core.events import AudioXrun, Event
from device.core.states import State
from device.rates import SPINE_RATE_HZ as RATE_HZ
from device.runtime.fsm_thread import Period, inbox_waits
from device.runtime.jobs import VirtualRunner
from device.sim.scene import Scene

if TYPE_CHECKING:
    from device.sim.demo import Rig


class _SimulatedCard:
    """What both simulated cards answer alike: the gate posts its reports into the inbox itself, no signals
    arrive, the card never fails, and the playout cursor is the gate's."""

    rig: Rig

    def reports(self) -> list[Event]:
        return []

    def requests(self) -> list[Event]:
        return []

    def health(self, _state: State) -> Event | None:
        return None

    def playout_samples(self) -> int | None:
        gate = self.rig.gate
        return gate.callback.played_samples if gate.busy() else None


class ReportedXruns:
    """The scene's reported xruns (`[[room.delay_jumps]]` with `reported`), told as a real card tells them
    (`CardSide`, device/runtime/card.py): hearing hears of each at once, with the sample it came at, before it hears
    that period, and an `AudioXrun` goes to the inbox for the log. Called on the FSM thread with each period the
    loop is about to hear."""

    def __init__(self, rig: Rig, scene: Scene) -> None:
        self._rig = rig
        self._due = deque(samples(jump.at_s) for jump in scene.room.delay_jumps if jump.reported)
        self.told = 0

    def tell(self, period: Period) -> None:
        end = period.start_sample + len(period.mic)
        while self._due and self._due[0] < end:
            self._rig.hearing.echo_path_moved(self._due.popleft())
            self._rig.inbox.post(AudioXrun(underflows=1, overflows=0))
            self.told += 1


class VirtualTime(_SimulatedCard):
    """The virtual card as the loop's audio side, and virtual time as its clock: `now` is the card's position."""

    one_instant = True

    def __init__(self, rig: Rig, scene: Scene) -> None:
        assert isinstance(rig.runner, VirtualRunner)
        self.rig = rig
        self._runner = rig.runner
        self._scene = scene
        self._stalls = deque(scene.stall)
        self._xruns = ReportedXruns(rig, scene)
        self._now = 0
        self._stalled = False
        self._finished: list[Event] = []

    @property
    def xruns(self) -> int:
        """The scene's reported xruns told so far (virtual time is never late)."""
        return self._xruns.told

    # ---- the audio side
    def periods(self) -> list[Period]:
        rig = self.rig
        backlog: list[Period] = []
        resume = self._now + rig.period  # without a stall, the loop runs again after one period
        if self._stalls and self._now >= samples(self._stalls[0].at_s):
            resume = self._now + max(rig.period, samples(self._stalls.popleft().ms / 1000))  # in whole periods
            rig.gate.pump_on_pull = False
        while self._now < resume:
            backlog.append(Period(self._now, *rig.card.tick(self._now, rig.period)))
            self._xruns.tell(backlog[-1])
            self._now += rig.period
            self.ticked()
        rig.gate.pump_on_pull = True
        # What the workers finished by now is already in a real loop's inbox, so no fact heard in this round can
        # cancel it unseen: it is stepped (or dropped as stale) after the heard facts, as on a real card.
        self._finished = self._runner.pop_due(self._now)
        self._stalled = len(backlog) > 1
        return backlog

    def ticked(self) -> None:
        """Called after each period the card ticks, before anything of it is stepped (a test's hook)."""

    def early_reports(self) -> list[Event]:
        # One period: the gate's reports from its tick are stepped before the period's heard facts. After a
        # stall, the card's reports from the frozen time come after the backlog, as in the real loop.
        return [] if self._stalled else self.rig.inbox.drain()

    def pump(self) -> None:
        pass  # the gate tops the ring up in `pull` (and not during a stall: the frozen thread would)

    def close(self) -> None:
        pass

    # ---- the clock
    def now(self) -> int:
        return self._now

    def ended(self) -> bool:
        return self.rig.finished(self._now, self._scene)

    def due(self, now: int) -> list[Event]:
        finished, self._finished = self._finished, []
        return finished + self._runner.pop_due(now)

    def waits(self) -> Iterator[list[Event]]:
        """Everything due at this instant, until nothing is: what a step posts or arms for now is stepped now."""
        rig = self.rig
        while True:
            due = rig.inbox.drain() + self._runner.pop_due(self._now) + rig.timers.pop_due(self._now)
            if not due:
                return
            yield due


class WallTime(_SimulatedCard):
    """The virtual card ticking in real time on its own thread; the loop's thread is the FSM thread."""

    one_instant = False

    def __init__(self, rig: Rig, scene: Scene) -> None:
        self.rig = rig
        self._scene = scene
        self._stalls = deque(scene.stall)
        self._xruns = ReportedXruns(rig, scene)
        self._captured: deque[Period] = deque()
        self._stop = threading.Event()
        self._position = 0
        self._period_s = rig.period / RATE_HZ
        self._late_periods = 0
        rig.gate.pump_on_pull = False  # the card thread only reads the ring; the FSM thread writes it (`pump`)
        self._thread = threading.Thread(target=self._card_thread, name="spine-card", daemon=True)
        self._thread.start()

    @property
    def xruns(self) -> int:
        """Periods the card thread ticked a whole period late (a real card would have under- or overrun), and the
        scene's reported xruns told so far."""
        return self._late_periods + self._xruns.told

    def _card_thread(self) -> None:
        rig = self.rig
        deadline = time.monotonic()
        while not self._stop.is_set():
            start = self._position
            self._captured.append(Period(start, *rig.card.tick(start, rig.period)))
            self._position = start + rig.period
            deadline += self._period_s
            lag = deadline - time.monotonic()
            if lag > 0:
                time.sleep(lag)
            elif -lag > self._period_s:  # a whole period late: a real device would have under- or overrun
                self._late_periods += 1
                deadline = time.monotonic()

    # ---- the audio side
    def periods(self) -> Iterator[Period]:
        if self._stalls and self._position >= samples(self._stalls[0].at_s):
            time.sleep(self._stalls.popleft().ms / 1000)  # a `[[stall]]`: this thread freezes, the card plays on
        return self._take_captured()

    def _take_captured(self) -> Iterator[Period]:
        while self._captured:  # periods the card captures meanwhile are heard in this round too
            period = self._captured.popleft()
            self._xruns.tell(period)
            yield period

    def early_reports(self) -> list[Event]:
        return []

    def pump(self) -> None:
        self.rig.gate.pump()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    # ---- the clock
    def now(self) -> int:
        return self._position

    def ended(self) -> bool:
        return self.rig.finished(self._position, self._scene)

    def due(self, _now: int) -> list[Event]:
        return []  # the workers post their results into the inbox

    def waits(self) -> Iterator[list[Event]]:
        return inbox_waits(self.rig.inbox, self._period_s / 2)
