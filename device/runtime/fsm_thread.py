"""The FSM thread's loop: the one loop of `spine run` (device/runtime/card.py), of the simulated room in virtual
time and of the wall-clock demo (device/sim/clocks.py). Only what differs between them is injected: an
`AudioSide` (where mic periods come from, where playback is topped up, what the card reports, its health) and
a `LoopClock` (what time it is, what is due, how the loop waits, when the run ends).

One round, always in this order (the order decides which of two simultaneous facts the spine sees first, and
the golden logs and the demo's byte-identical `events.jsonl` record it):

1. `audio.periods()`: the mic periods captured since the last round, oldest first, each with what the speaker
   played meanwhile (a simulated stall: several periods at once; a real card after a slow round: several).
2. `audio.early_reports()`: reports stepped before this round's heard facts (the virtual card's; a real card's
   xruns and latency steps, so the log shows them before hearing's reaction).
3. Each period is heard and its facts stepped at once. In virtual time (`clock.one_instant`) the round is one
   instant: the last period's facts are not stepped alone but join the batch of step 4, which is collected
   before any of it is stepped (so nothing stepped at this instant can cancel a result already due unseen).
4. One batch, collected in this order, then stepped in it: the card's reports, the inbox (the workers'
   results), requests from outside (the mute signals), what the clock has due (the modelled workers' results
   in virtual time), the timers due now.
5. `audio.pump()` tops the playback ring up; `audio.health(state)` may report the card lost (stepped at once).
6. `clock.waits()`: the batches that arrive before the next round, each stepped before the next is asked for
   (wall clock: what the inbox brings within half a period; virtual time: everything due at this instant,
   until nothing is - virtual time stands still while the loop works).

Every event is stepped through `step()` at `clock.now()`; the spine's loop (device/runtime/loop.py) logs it,
steps the core, executes the commands and tells the observers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from device.core.events import Event
from device.core.states import State
from device.runtime.daemon import Daemon
from device.runtime.loop import Inbox

Audio = npt.NDArray[np.int16]


class Period(NamedTuple):
    """One period of the mic at Spine's rate, with the samples the speaker played in the same period."""

    start_sample: int
    mic: Audio
    played: Audio


class AudioSide(Protocol):
    """The sound card as the loop sees it: a real one (device/runtime/card.py) or the simulated room's."""

    def periods(self) -> Iterable[Period]:
        """The mic periods ready for hearing, oldest first. May be lazy: periods captured while the first ones
        are heard are heard in the same round."""
        ...

    def early_reports(self) -> list[Event]:
        """Reports stepped before this round's heard facts (called after `periods()`)."""
        ...

    def reports(self) -> list[Event]:
        """The card's own reports (played and stopped epochs), in Spine samples, stepped after the heard facts."""
        ...

    def requests(self) -> list[Event]:
        """Requests from outside the mic and the workers (the mute signals of `spine run`)."""
        ...

    def pump(self) -> None:
        """Top the playback ring up from the feeder (the FSM thread is the ring's only writer)."""
        ...

    def health(self, state: State) -> Event | None:
        """A fact about the card's health to step now (a stalled or vanished stream), if any."""
        ...

    def playout_samples(self) -> int | None:
        """Samples of the playing epoch handed to the speaker so far (Spine rate); None while nothing plays."""
        ...

    def close(self) -> None:
        """The run is over: stop the audio side (after the stop was stepped, before the workers are joined)."""
        ...


class LoopClock(Protocol):
    """How time passes for the loop."""

    @property
    def one_instant(self) -> bool:
        """True in virtual time: a round is one instant (see step 3 of the round)."""
        ...

    def now(self) -> int:
        """The sample time at which the next event is stepped (read once per event)."""
        ...

    def ended(self) -> bool:
        """The run is over (a stop was requested, the scene ended)."""
        ...

    def due(self, now: int) -> list[Event]:
        """Events due by `now` that no thread posts (virtual time: the modelled workers' results)."""
        ...

    def waits(self) -> Iterator[list[Event]]:
        """What arrives before the next round, batch by batch; each is stepped before the next is asked for."""
        ...


def inbox_waits(inbox: Inbox, timeout_s: float) -> Iterator[list[Event]]:
    """The wall clock's wait: the first event the inbox brings within `timeout_s`, if one comes."""
    arrived = inbox.wait(timeout_s)
    if arrived is not None:
        yield [arrived]


class Liveness:
    """Counters a watchdog on another thread reads to tell a stuck FSM thread or card from a quiet one.

    Only the FSM thread writes them, and each is a plain int (or None) attribute: in CPython reading one from
    another thread is safe (an attribute read is atomic under the GIL) and sees a value at most one update old.
    A reader must not expect two counters to be from the same moment."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self.periods_heard = 0
        """Mic periods handed to hearing (frozen: the card delivers nothing, or the FSM thread is stuck)."""
        self.rounds = 0
        """Rounds of the loop begun (frozen: the FSM thread is stuck)."""
        self.playout_samples: int | None = None
        """The playing epoch's playout cursor as of the last round (frozen while playing: playback is stuck);
        None while nothing plays."""
        self.budget_s = 0.010
        """A round's work must stay under one audio period, or the capture ring fills while the loop is busy
        (`spine run` sets the card's period)."""
        self.work_s_total = 0.0
        """Time the rounds spent working (hearing, stepping, pumping), not waiting for the card."""
        self.work_s_max = 0.0
        self.rounds_over_budget = 0
        """Rounds whose work took longer than `budget_s` per period they heard (at least one): the loop fell
        behind the card (read by `/metrics` and `spine bench monitor`)."""

    def worked(self, seconds: float, periods: int) -> None:
        self.work_s_total += seconds
        if seconds > self.work_s_max:
            self.work_s_max = seconds
        if seconds > self.budget_s * max(1, periods):
            self.rounds_over_budget += 1

    @property
    def steps(self) -> int:
        """Events stepped so far."""
        return self._daemon.loop.steps


class FsmThread:
    """Runs the daemon's rounds on the calling thread until the clock says the run has ended."""

    def __init__(self, daemon: Daemon, audio: AudioSide, clock: LoopClock) -> None:
        self.daemon = daemon
        self.audio = audio
        self.clock = clock
        self.liveness = Liveness(daemon)

    def run(self, reason: str | Callable[[], str]) -> None:
        """Rounds until the run ends; then the stop is stepped (with `reason`, or what it returns then), the audio
        side closes and the daemon finishes its jobs and log.

        The stop is stepped first, before anything that can block (closing a sound card, joining workers), so
        the log ends with it whatever happens next; its commands (cutting the start-up sound) reach a card that
        still runs."""
        failure: Exception | None = None
        try:
            while not self.clock.ended():
                self.round()
        except Exception as error:  # a bug, a model's exception: the log says so as the stop's reason
            failure = error
            raise
        finally:
            said = reason if isinstance(reason, str) else reason()
            if failure is not None:
                said = f"the loop failed: {type(failure).__name__}: {failure}"
            self.daemon.request_stop(self.clock.now(), said)
            self.audio.close()
            self.daemon.finish(self.clock.now())

    def round(self) -> None:
        """One round of the loop, in the order of the module's docstring."""
        audio, clock, daemon = self.audio, self.clock, self.daemon
        began, heard = time.perf_counter(), self.liveness.periods_heard
        self.liveness.rounds += 1
        periods = audio.periods()
        pending = audio.early_reports()
        for index, period in enumerate(periods):
            if index and clock.one_instant:  # a later period: the earlier one's facts are stepped before it
                self.step_all(pending)
                pending = []
            pending += self._hear(period)
            if not clock.one_instant:
                self.step_all(pending)
                pending = []
        pending += audio.reports()
        pending += daemon.inbox.drain()
        pending += audio.requests()
        pending += clock.due(clock.now())
        pending += daemon.timers.pop_due(clock.now())
        self.step_all(pending)
        audio.pump()
        problem = audio.health(daemon.loop.state)
        if problem is not None:
            self.step(problem)
        self.liveness.worked(time.perf_counter() - began, self.liveness.periods_heard - heard)
        for arrived in clock.waits():
            self.step_all(arrived)
        self.liveness.playout_samples = audio.playout_samples()

    def step(self, event: Event) -> None:
        """Steps one event at the clock's now: the one place a round hands an event to the spine."""
        self.daemon.loop.handle(event, self.clock.now())

    def step_all(self, events: list[Event]) -> None:
        for event in events:
            self.step(event)

    def _hear(self, period: Period) -> list[Event]:
        facts = self.daemon.hear(period.mic, period.start_sample, period.played)
        self.liveness.periods_heard += 1
        return facts
