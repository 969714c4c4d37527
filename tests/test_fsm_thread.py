"""The one FSM-thread loop (device/runtime/fsm_thread.py), its hooks, and the executor's states - no models, no
sound card: a fake audio side and clock that stamp each event with where it came from, the real spine loop,
inbox, timers and executor around a hearing stub.

* the round's order, on the wall clock and in virtual time (one instant), is the documented one;
* observers see every logged step: (now, event, state name, commands), the same as the log;
* the liveness counters (periods heard, rounds, steps, playout cursor) move, and another thread reads them;
* the mic's state and the playing chime are states set by commands and cleared by the gate's reports.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NoReturn, cast

import numpy as np
import numpy.typing as npt
import pytest

from device.config import Config, core_config
from device.core import commands as cmd
from device.core import events as ev
from device.core.states import State, initial
from device.runtime.capture import CaptureHistory
from device.runtime.daemon import Daemon
from device.runtime.eventlog import EventLog, read_log
from device.runtime.executor import Executor, MicState, OpenedEpoch, PlayingEarcon
from device.runtime.fsm_thread import FsmThread, Period
from device.runtime.jobs import VirtualRunner
from device.runtime.loop import Inbox, SpineLoop
from device.runtime.timers import Timers
from device.runtime.work import Costs

PERIOD = 160
Audio = npt.NDArray[np.int16]


class Gate:
    """A playback side that only records what the executor asked of it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def open(self, epoch: int) -> None:
        self.calls.append(("open", epoch))

    def queue(self, epoch: int, audio: Audio) -> None:
        self.calls.append(("queue", epoch))

    def finish(self, epoch: int) -> None:
        self.calls.append(("finish", epoch))

    def cut(self, epoch: int) -> None:
        self.calls.append(("cut", epoch))

    def pause(self, epoch: int) -> None:
        self.calls.append(("pause", epoch))

    def resume(self, epoch: int) -> None:
        self.calls.append(("resume", epoch))


class NoAsr:
    def transcribe(self, audio: Audio) -> NoReturn:
        raise AssertionError("no speech to text in these tests")


class NoTts:
    def synthesize(self, text: str) -> NoReturn:
        raise AssertionError("no speech synthesis in these tests")


def make_executor(timers: Timers) -> Executor:
    return Executor(
        runner=VirtualRunner(0),
        gate=Gate(),
        timers=timers,
        capture=CaptureHistory(16000),
        asr=NoAsr(),
        tts=NoTts(),
        respond=lambda _prompt, _history, _now: iter(()),
        local_time=lambda _now: datetime(2026, 1, 1),
        costs=Costs(0, 0.0, 0, 0.0, 0, 0),
    )


@dataclass
class FakeDaemon:
    """What FsmThread uses of a Daemon: hearing (a stub that reports one fact per period), the spine's loop, the
    inbox and the timers."""

    log_path: Path
    facts_per_period: int = 1
    inbox: Inbox = field(default_factory=Inbox)
    timers: Timers = field(default_factory=Timers)
    stopped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.executor = make_executor(self.timers)
        self.log = EventLog(self.log_path, core_config(Config()))
        self.loop = SpineLoop(initial(core_config(Config())), self.log, self.executor)

    def hear(self, mic: Audio, start: int, played: Audio) -> list[ev.Event]:
        return [ev.StopRequested(f"heard {start}") for _ in range(self.facts_per_period)]

    def request_stop(self, now: int, reason: str) -> None:
        self.stopped.append(f"stop stepped: {reason}")

    def finish(self, now: int) -> None:
        self.stopped.append("finished")
        self.log.close()


def tag(event: ev.Event) -> str:
    """Where a fake event came from (its `reason`), or the event type."""
    return event.reason if isinstance(event, ev.StopRequested) else type(event).__name__


@dataclass
class Side:
    """A fake audio side and clock in one: each source hands out one tagged event per round."""

    one_instant: bool
    periods_per_round: int = 1
    rounds: int = 1
    playing: int | None = None
    daemon: FakeDaemon | None = None
    _round: int = 0
    _now: int = 0

    def periods(self) -> Iterable[Period]:
        self._round += 1
        assert self.daemon is not None
        self.daemon.inbox.post(ev.StopRequested("inbox"))  # as the simulated card's gate posts its reports
        self.daemon.timers.arm("listen", self._round, self._now + PERIOD)
        out = []
        for _ in range(self.periods_per_round):
            out.append(Period(self._now, np.zeros(PERIOD, np.int16), np.zeros(PERIOD, np.int16)))
            self._now += PERIOD
        return out

    def early_reports(self) -> list[ev.Event]:
        return [ev.StopRequested("early")]

    def reports(self) -> list[ev.Event]:
        return [ev.StopRequested("reports")]

    def requests(self) -> list[ev.Event]:
        return [ev.StopRequested("requests")]

    def pump(self) -> None:
        pass

    def health(self, state: State) -> ev.Event | None:
        return ev.StopRequested("health")

    def playout_samples(self) -> int | None:
        return self.playing

    def close(self) -> None:
        assert self.daemon is not None
        self.daemon.stopped.append("audio closed")

    def now(self) -> int:
        return self._now

    def ended(self) -> bool:
        return self._round >= self.rounds

    def due(self, now: int) -> list[ev.Event]:
        return [ev.StopRequested("due")]

    def waits(self) -> Iterator[list[ev.Event]]:
        yield [ev.StopRequested("wait 1")]
        yield [ev.StopRequested("wait 2")]


def run_rounds(tmp_path: Path, side: Side, facts_per_period: int = 1) -> tuple[FsmThread, list[str]]:
    """Runs the loop; "heard 160" cancels the round's timer when it is stepped (as a heard fact may)."""
    daemon = FakeDaemon(tmp_path / "events.jsonl", facts_per_period)
    side.daemon = daemon
    seen: list[str] = []

    def observe(_now: int, event: ev.Event, _state: str, _commands: tuple[cmd.Command, ...]) -> None:
        seen.append(tag(event))
        if tag(event) == "heard 160":
            daemon.timers.cancel("listen", 1)

    daemon.loop.observers.append(observe)
    fsm = FsmThread(cast(Daemon, daemon), side, side)
    fsm.run("end")
    return fsm, seen


def test_a_round_on_the_wall_clock_steps_each_period_then_the_batch_then_health_then_what_arrives(
    tmp_path: Path,
) -> None:
    _, seen = run_rounds(tmp_path, Side(one_instant=False, periods_per_round=2))
    # The timer due now was cancelled by "heard 160", stepped before the timers were looked at: it never fires.
    assert seen == [
        "early",
        "heard 0",
        "heard 160",
        "reports",
        "inbox",
        "requests",
        "due",
        "health",
        "wait 1",
        "wait 2",
    ]


def test_a_round_in_virtual_time_collects_the_last_periods_facts_and_the_batch_before_stepping_any_of_it(
    tmp_path: Path,
) -> None:
    _, seen = run_rounds(tmp_path, Side(one_instant=True, periods_per_round=2))
    # The timer was due at this instant before "heard 160" was stepped: it fires all the same (the spine drops
    # it as stale), as a job's result already due would reach the spine.
    assert seen == [
        "early",
        "heard 0",
        "heard 160",
        "reports",
        "inbox",
        "requests",
        "due",
        "TimerFired",
        "health",
        "wait 1",
        "wait 2",
    ]


def test_in_virtual_time_an_earlier_periods_facts_are_stepped_before_the_next_period_is_heard(tmp_path: Path) -> None:
    heard_at_steps: list[int] = []
    daemon = FakeDaemon(tmp_path / "events.jsonl")
    side = Side(one_instant=True, periods_per_round=3)
    side.daemon = daemon
    original = daemon.hear

    def hear(mic: Audio, start: int, played: Audio) -> list[ev.Event]:
        heard_at_steps.append(daemon.loop.steps)
        return original(mic, start, played)

    daemon.hear = hear  # type: ignore[method-assign]
    FsmThread(cast(Daemon, daemon), side, side).round()
    assert heard_at_steps == [0, 2, 3]  # "early" and "heard 0" before the 2nd period, "heard 160" before the 3rd


def test_observers_see_every_logged_step_with_its_state_and_commands(tmp_path: Path) -> None:
    daemon = FakeDaemon(tmp_path / "events.jsonl")
    seen: list[tuple[int, ev.Event, str, tuple[cmd.Command, ...]]] = []
    daemon.loop.observers.append(lambda *step: seen.append(step))
    for now, event in ((0, ev.Started()), (800, ev.MuteChanged(True, "test")), (1600, ev.MuteChanged(False, "test"))):
        daemon.loop.handle(event, now)
    daemon.loop.handle(ev.StopRequested("end"), 2400)
    daemon.log.close()
    logged = read_log(tmp_path / "events.jsonl").steps
    assert [(s[0], s[1], s[2], s[3]) for s in seen] == [(s.t, s.event, s.state, s.commands) for s in logged]
    assert len(seen) == 4 and daemon.loop.steps == 4


def test_liveness_counts_periods_rounds_and_steps_and_copies_the_playout_cursor(tmp_path: Path) -> None:
    fsm, seen = run_rounds(tmp_path, Side(one_instant=False, periods_per_round=3, rounds=2, playing=480))
    liveness = fsm.liveness
    assert (liveness.periods_heard, liveness.rounds, liveness.playout_samples) == (6, 2, 480)
    assert liveness.steps == len(seen) == daemon_steps(fsm)


def test_liveness_is_readable_from_another_thread_while_the_loop_runs(tmp_path: Path) -> None:
    side = Side(one_instant=False, rounds=200)
    daemon = FakeDaemon(tmp_path / "events.jsonl", facts_per_period=0)
    side.daemon = daemon
    fsm = FsmThread(cast(Daemon, daemon), side, side)
    readings: list[tuple[int, int, int]] = []
    done = threading.Event()

    def watchdog() -> None:
        while not done.is_set():
            live = fsm.liveness
            readings.append((live.rounds, live.periods_heard, live.steps))

    reader = threading.Thread(target=watchdog)
    reader.start()
    try:
        fsm.run("end")
    finally:
        done.set()
        reader.join()
    assert len(readings) > 1
    for counter in range(3):  # each counter only ever moves forward
        values = [reading[counter] for reading in readings]
        assert values == sorted(values)
    assert (fsm.liveness.rounds, fsm.liveness.periods_heard) == (200, 200)


def daemon_steps(fsm: FsmThread) -> int:
    return fsm.daemon.loop.steps


def test_set_microphone_sets_the_mics_state() -> None:
    executor = make_executor(Timers())
    states = [executor.mic]
    executor.execute((cmd.SetMicrophone(False),), 0)
    states.append(executor.mic)
    executor.execute((cmd.SetMicrophone(True),), 0)
    states.append(executor.mic)
    assert states == [MicState.OPEN, MicState.MUTED, MicState.OPEN]


def test_the_playing_chime_is_cleared_when_its_epoch_drains_or_stops_and_not_by_an_older_epochs_report(
    tmp_path: Path,
) -> None:
    daemon = FakeDaemon(tmp_path / "events.jsonl")
    executor = daemon.executor
    executor.execute((cmd.PlayEarcon(3, "wake"),), 0)
    assert executor.earcon == PlayingEarcon(3, "wake")
    daemon.loop.handle(ev.PlaybackDrained(2, 100), 10)  # an older epoch's report
    assert executor.earcon == PlayingEarcon(3, "wake")
    daemon.loop.handle(ev.PlaybackDrained(3, 1600), 20)
    assert executor.earcon is None
    # Hearing still knows the last epoch opened was that chime (the speaker is silent until the next opens).
    assert executor.opened == OpenedEpoch(3, "wake", ended=True)
    executor.execute((cmd.PlayEarcon(4, "timeout"),), 30)
    daemon.loop.handle(ev.PlaybackStopped(4, 80), 40)
    assert executor.earcon is None
    executor.execute((cmd.PlayEarcon(5, "mute"), cmd.OpenPlayback(6, 1)), 50)
    assert executor.earcon is None  # the reply's epoch replaced the chime
    assert executor.opened == OpenedEpoch(6, None)


def test_a_command_the_executor_does_not_know_fails_loudly() -> None:
    with pytest.raises(AssertionError):
        make_executor(Timers()).execute((object(),), 0)  # type: ignore[arg-type]


def test_the_stop_is_stepped_before_the_audio_side_closes_and_the_daemon_finishes(tmp_path: Path) -> None:
    """Whatever blocks at the end (a sound card that does not close, a worker that does not return), the log
    already ends with the stop; its reason is read when the loop ends (a signal names it then)."""
    side = Side(one_instant=False, rounds=2)
    daemon = FakeDaemon(tmp_path / "events.jsonl")
    side.daemon = daemon
    reasons = iter(["SIGTERM"])
    FsmThread(cast(Daemon, daemon), side, side).run(lambda: next(reasons))
    assert daemon.stopped == ["stop stepped: SIGTERM", "audio closed", "finished"]


def test_a_failing_round_still_steps_the_stop_and_finishes(tmp_path: Path) -> None:
    side = Side(one_instant=False, rounds=5)
    daemon = FakeDaemon(tmp_path / "events.jsonl")
    side.daemon = daemon

    def broken() -> Iterator[list[ev.Event]]:
        raise RuntimeError("a bug in a round")
        yield []

    side.waits = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="a bug in a round"):
        FsmThread(cast(Daemon, daemon), side, side).run("end")
    assert daemon.stopped == [
        "stop stepped: the loop failed: RuntimeError: a bug in a round",
        "audio closed",
        "finished",
    ]
