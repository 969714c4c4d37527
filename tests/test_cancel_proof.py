"""Cancellation with proof (invariant 6) on the wall-clock runner: every cancelled job acknowledges, or it is
reported as leaked, abandoned, and its worker replaced.

The jobs here run on real threads and really block (on a `threading.Event` the test holds), but no test reads
the clock or sleeps: the runner's clock is injected, its watchdog is off, and the test calls `check_leaks` at
the times it chooses. Tests wait on the inbox and on Events, each with a timeout, so a bug fails instead of
hanging. One test runs the real watchdog on the real clock, with a deadline of a few ms.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field

import pytest

from device.core.events import Event, JobCancelled, JobKind, ReplyDelta, ReplyFinished, TtsChunkReady
from device.runtime.job_threads import ThreadRunner
from device.runtime.jobs import Job, Leak, Output

RATE_HZ = 16000
DEADLINE_S = 0.5
WAIT_S = 5.0  # upper bound for a real thread to do something; tests pass as soon as it does


class Clock:
    """The runner's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


@dataclass
class Rig:
    runner: ThreadRunner
    inbox: queue.SimpleQueue[Event]
    clock: Clock
    leaks: list[tuple[int, JobKind, float]] = field(default_factory=list)


@pytest.fixture
def rig() -> Iterator[Rig]:
    inbox: queue.SimpleQueue[Event] = queue.SimpleQueue()
    clock = Clock()
    leaks: list[tuple[int, JobKind, float]] = []
    runner = ThreadRunner(
        inbox.put,
        RATE_HZ,
        cancel_deadline_s=DEADLINE_S,
        on_leak=lambda turn, kind, waited_ms: leaks.append((turn, kind, waited_ms)),
        monotonic=clock,
        watchdog=False,
    )
    try:
        yield Rig(runner, inbox, clock, leaks)
    finally:
        runner.stop()


@dataclass
class Stuck:
    """A job stuck in code that never looks at the cancel flag: it blocks until the test releases it."""

    release: threading.Event = field(default_factory=threading.Event)
    blocked: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def job(self, turn: int, kind: JobKind = "reply") -> Job:
        def run() -> Generator[Output, None, None]:
            self.threads.append(threading.current_thread())
            try:
                yield Output(ReplyDelta(turn, "Once "), 0)
                self.blocked.set()
                self.release.wait(30 * WAIT_S)  # the test sets it; the timeout only keeps a bug from hanging CI
                yield Output(ReplyDelta(turn, "late "), 0)
                yield Output(ReplyFinished(turn), 0)
            finally:
                self.closed.set()

        return Job(turn, kind, run)


def job_of(turn: int, kind: JobKind, outputs: list[Output]) -> Job:
    def run() -> Generator[Output, None, None]:
        yield from outputs

    return Job(turn, kind, run)


def quick(turn: int, kind: JobKind = "reply") -> Job:
    return job_of(turn, kind, [Output(ReplyFinished(turn), 0)])


def stuck_and_cancelled(rig: Rig, stuck: Stuck, turn: int = 1) -> None:
    rig.runner.start(stuck.job(turn), 0)
    assert rig.inbox.get(timeout=WAIT_S) == ReplyDelta(turn, "Once ")
    assert stuck.blocked.wait(WAIT_S)
    rig.runner.cancel_turn(turn, 0)


def test_a_stuck_job_is_reported_as_leaked_once_the_deadline_has_passed_and_not_before(rig: Rig) -> None:
    stuck = Stuck()
    try:
        stuck_and_cancelled(rig, stuck)
        assert rig.runner.next_ack_due() == 100.0 + DEADLINE_S
        rig.clock.now_s += DEADLINE_S - 0.001
        assert (rig.runner.check_leaks(rig.clock.now_s), rig.runner.leaks, rig.leaks) == ([], 0, [])
        rig.clock.now_s += 0.001
        assert rig.runner.check_leaks(rig.clock.now_s) == [Leak(1, "reply", 500.0)]
        assert (rig.runner.leaks, rig.leaks) == (1, [(1, "reply", 500.0)])
        rig.clock.now_s += 10.0
        assert rig.runner.check_leaks(rig.clock.now_s) == []  # reported once
        assert rig.runner.next_ack_due() is None
        assert rig.inbox.empty()  # no acknowledgement, and nothing else either
    finally:
        stuck.release.set()


def test_the_leaked_worker_is_replaced_so_the_next_turn_runs_while_the_stuck_thread_still_blocks(rig: Rig) -> None:
    stuck = Stuck()
    try:
        stuck_and_cancelled(rig, stuck)
        rig.runner.start(quick(2), 0)  # queued behind the stuck job on the reply worker
        rig.clock.now_s += DEADLINE_S
        assert rig.runner.check_leaks(rig.clock.now_s) == [Leak(1, "reply", 500.0)]
        assert rig.inbox.get(timeout=WAIT_S) == ReplyFinished(2)  # run by the fresh worker thread
        rig.runner.start(quick(3), 0)
        assert rig.inbox.get(timeout=WAIT_S) == ReplyFinished(3)
        (old,) = stuck.threads
        assert old.is_alive() and old.daemon  # still stuck; abandoned, it cannot keep the process from exiting
    finally:
        stuck.release.set()


def test_the_stuck_jobs_late_output_is_never_posted_even_after_it_is_released(rig: Rig) -> None:
    stuck = Stuck()
    try:
        stuck_and_cancelled(rig, stuck)
        rig.clock.now_s += DEADLINE_S
        assert len(rig.runner.check_leaks(rig.clock.now_s)) == 1
    finally:
        stuck.release.set()
    (abandoned,) = stuck.threads
    abandoned.join(WAIT_S)  # it yields "late ", which is dropped, closes its generator and leaves
    assert not abandoned.is_alive() and stuck.closed.is_set()
    assert rig.inbox.empty()  # neither "late ", nor ReplyFinished, nor a late JobCancelled
    rig.runner.start(quick(2), 0)
    assert rig.inbox.get(timeout=WAIT_S) == ReplyFinished(2)
    assert rig.runner.leaks == 1


def test_a_job_cancelled_while_queued_behind_a_stuck_one_is_acknowledged_by_the_fresh_worker(rig: Rig) -> None:
    stuck = Stuck()
    try:
        rig.runner.start(stuck.job(1, "tts"), 0)
        assert rig.inbox.get(timeout=WAIT_S) == ReplyDelta(1, "Once ")
        rig.runner.start(job_of(1, "tts", [Output(TtsChunkReady(1, 1, "Hi.", 10, (10,)), 0)]), 0)
        assert stuck.blocked.wait(WAIT_S)
        rig.runner.cancel_turn(1, 0)
        rig.clock.now_s += DEADLINE_S
        assert rig.runner.check_leaks(rig.clock.now_s) == [Leak(1, "tts", 500.0)]  # only the running one
        assert rig.inbox.get(timeout=WAIT_S) == JobCancelled(1, "tts")  # the queued one: never run, acknowledged
        assert rig.runner.next_ack_due() is None and rig.runner.check_leaks(rig.clock.now_s + 10) == []
    finally:
        stuck.release.set()


def test_a_job_that_acknowledges_in_time_is_no_leak_and_one_that_ended_before_the_cancel_acks_nothing(
    rig: Rig,
) -> None:
    rig.runner.start(quick(1), 0)
    assert rig.inbox.get(timeout=WAIT_S) == ReplyFinished(1)
    rig.runner.cancel_turn(1, 0)  # it had ended: nothing to acknowledge, nothing to wait for
    assert rig.runner.next_ack_due() is None

    def ends_as_the_cancel_lands() -> Generator[Output, None, None]:
        yield Output(ReplyDelta(2, "Once "), 0)
        rig.runner.cancel_turn(2, 0)  # on the worker thread, between outputs: the job then ends by itself

    rig.runner.start(Job(2, "reply", ends_as_the_cancel_lands), 0)
    assert rig.inbox.get(timeout=WAIT_S) == ReplyDelta(2, "Once ")
    assert rig.inbox.get(timeout=WAIT_S) == JobCancelled(2, "reply")  # cancelled before it ended: it acks
    rig.clock.now_s += 60.0
    assert (rig.runner.check_leaks(rig.clock.now_s), rig.runner.leaks, rig.leaks) == ([], 0, [])


def test_the_abort_hook_runs_on_the_cancelling_thread_and_unblocks_the_job(rig: Rig) -> None:
    unblock, blocked = threading.Event(), threading.Event()
    aborted_on: list[threading.Thread] = []

    def blocked_in_io() -> Generator[Output, None, None]:
        blocked.set()
        unblock.wait(30 * WAIT_S)  # stands for a read on a socket that the abort shuts down
        yield Output(ReplyDelta(1, "late "), 0)  # what a closed stream never gives: dropped if it did

    def abort() -> None:
        aborted_on.append(threading.current_thread())
        unblock.set()

    try:
        rig.runner.start(Job(1, "reply", blocked_in_io, abort=abort), 0)
        assert blocked.wait(WAIT_S)
        rig.runner.cancel_turn(1, 0)
        assert aborted_on == [threading.current_thread()]
        assert rig.inbox.get(timeout=WAIT_S) == JobCancelled(1, "reply")
        assert rig.runner.check_leaks(rig.clock.now_s + 60.0) == [] and rig.inbox.empty()
    finally:
        unblock.set()


def test_a_failing_abort_does_not_reach_the_cancelling_thread_and_the_job_then_leaks(rig: Rig) -> None:
    stuck = Stuck()

    def broken_abort() -> None:
        raise OSError("the socket was already gone")

    try:
        job = stuck.job(1)
        rig.runner.start(Job(job.turn, job.kind, job.run, abort=broken_abort), 0)
        assert rig.inbox.get(timeout=WAIT_S) == ReplyDelta(1, "Once ")
        assert stuck.blocked.wait(WAIT_S)
        rig.runner.cancel_turn(1, 0)
        rig.clock.now_s += DEADLINE_S
        assert rig.runner.check_leaks(rig.clock.now_s) == [Leak(1, "reply", 500.0)]
    finally:
        stuck.release.set()


def test_the_watchdog_finds_a_leak_on_its_own_on_the_real_clock() -> None:
    inbox: queue.SimpleQueue[Event] = queue.SimpleQueue()
    found: queue.SimpleQueue[tuple[int, JobKind, float]] = queue.SimpleQueue()

    def report(turn: int, kind: JobKind, waited_ms: float) -> None:
        found.put((turn, kind, waited_ms))

    runner = ThreadRunner(inbox.put, RATE_HZ, cancel_deadline_s=0.005, on_leak=report)
    stuck = Stuck()
    try:
        runner.start(stuck.job(1, "asr"), 0)
        assert inbox.get(timeout=WAIT_S) == ReplyDelta(1, "Once ")
        assert stuck.blocked.wait(WAIT_S)
        runner.cancel_turn(1, 0)
        turn, kind, waited_ms = found.get(timeout=WAIT_S)
        assert (turn, kind, runner.leaks) == (1, "asr", 1) and waited_ms >= 5.0
        runner.start(quick(2, "asr"), 0)
        assert inbox.get(timeout=WAIT_S) == ReplyFinished(2)
    finally:
        stuck.release.set()
        runner.stop()


def test_stop_lets_a_running_job_return_before_it_returns_itself(rig: Rig) -> None:
    """A job inside native code while the interpreter finalises aborts the process: stop waits for it."""
    stuck = Stuck()
    rig.runner.start(stuck.job(1, "tts"), 0)
    assert stuck.blocked.wait(WAIT_S)
    stuck.release.set()  # the job now finishes on its own thread
    rig.runner.stop()
    assert stuck.closed.is_set() and not stuck.threads[0].is_alive()


def test_stop_waits_no_longer_than_its_bound_for_a_job_that_never_returns(rig: Rig) -> None:
    stuck = Stuck()
    rig.runner.start(stuck.job(1, "tts"), 0)
    assert stuck.blocked.wait(WAIT_S)
    try:
        rig.runner.stop(join_timeout_s=0.0)
        assert stuck.threads[0].is_alive() and not stuck.closed.is_set()
    finally:
        stuck.release.set()
