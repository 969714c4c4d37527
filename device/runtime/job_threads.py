"""`ThreadRunner`: the jobs on the wall clock, one worker thread per kind, with cancellation with proof (the
whole story is in `device/runtime/jobs.py`'s docstring; the job types and the virtual-clock runner live there).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable

from device.core.events import EngineFailed, Event, JobCancelled, JobKind
from device.runtime.jobs import CANCEL_DEADLINE_S, KINDS, STOP_JOIN_S, Job, Leak
from device.thread_name import name_this_thread


class _Task:
    """One submitted job and what became of it. The times are guarded by the worker's lock."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.stop = threading.Event()  # set on cancel (never cleared): ends a paced wait at once
        self.cancelled_at_s: float | None = None
        self.started_at_s: float | None = None

    def ack_due_s(self, deadline_s: float) -> float | None:
        """When a cancelled, running task must have acknowledged; counted from its start if it was cancelled
        while queued (it then acks without running, once its thread reaches it)."""
        if self.cancelled_at_s is None or self.started_at_s is None:
            return None
        return max(self.cancelled_at_s, self.started_at_s) + deadline_s


class _Worker:
    """The worker of one kind: a queue of tasks and the thread running them, one at a time.

    `_thread` is the current thread. A thread that is no longer current was abandoned after a leak: it posts
    nothing more, and leaves once its stuck job returns. Every post happens under `_lock`, after that check.
    """

    def __init__(
        self, kind: JobKind, post: Callable[[Event], None], rate_hz: int, monotonic: Callable[[], float]
    ) -> None:
        self.kind = kind
        self._post = post
        self._rate_hz = rate_hz
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a task queued, or the worker stopping or replaced
        self._queue: deque[_Task] = deque()
        self._running: _Task | None = None
        self._stopping = False
        self._generation = 0
        self.leaks = 0
        with self._lock:
            self._thread = self._start_thread()

    # ------------------------------------------------------------------------------ the cancelling side

    def submit(self, task: _Task) -> None:
        with self._changed:
            self._queue.append(task)
            self._changed.notify()

    def cancel(self, turn: int, now_s: float) -> list[Callable[[], None]]:
        """Marks the turn's tasks that have not ended as cancelled; returns their abort hooks, to be called
        outside the lock (they may take locks of their own)."""
        aborts: list[Callable[[], None]] = []
        with self._lock:
            for task in (self._running, *self._queue):
                if task is None or task.job.turn != turn or task.cancelled_at_s is not None:
                    continue
                task.cancelled_at_s = now_s
                task.stop.set()
                if task.job.abort is not None:
                    aborts.append(task.job.abort)
        return aborts

    def next_ack_due(self, deadline_s: float) -> float | None:
        with self._lock:
            return None if self._running is None else self._running.ack_due_s(deadline_s)

    def check_leak(self, now_s: float, deadline_s: float) -> Leak | None:
        """If the running task missed its acknowledgement deadline: abandon its thread and start a fresh one."""
        with self._lock:
            task = self._running
            due_s = None if task is None else task.ack_due_s(deadline_s)
            if task is None or task.cancelled_at_s is None or due_s is None or now_s < due_s:
                return None
            self._running = None
            self.leaks += 1
            self._thread = self._start_thread()  # it waits for the lock, then takes the next task in the queue
            return Leak(task.job.turn, task.job.kind, round((now_s - task.cancelled_at_s) * 1000, 1))

    def stop(self, now_s: float) -> list[Callable[[], None]]:
        """Take no more tasks, drop the queued ones, and cancel the running one (its thread then posts nothing
        more); returns its abort hook, if any, to be called outside the lock."""
        with self._changed:
            self._stopping = True
            self._queue.clear()
            self._changed.notify_all()
            task = self._running
            if task is None or task.cancelled_at_s is not None:
                return []
            task.cancelled_at_s = now_s
            task.stop.set()
            return [task.job.abort] if task.job.abort is not None else []

    def join(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` for the current thread to finish its job and leave (abandoned ones are stuck)."""
        with self._lock:
            thread = self._thread
        if thread is not _NO_THREAD:
            thread.join(timeout_s)

    def abandon_if_running(self, now_s: float) -> Leak | None:
        """After the stop's join: a thread still running its (cancelled) job has leaked; it is abandoned."""
        with self._lock:
            task = self._running
            if task is None or not self._thread.is_alive():
                return None
            self._running = None
            self.leaks += 1
            self._generation += 1  # no thread is current any more: the stuck one posts nothing, ever
            self._thread = _NO_THREAD
            waited_s = now_s - (task.cancelled_at_s if task.cancelled_at_s is not None else now_s)
            return Leak(task.job.turn, task.job.kind, round(waited_s * 1000, 1))

    # ------------------------------------------------------------------------------ the worker thread

    def _start_thread(self) -> threading.Thread:
        """A fresh current thread (the lock is held: the thread only runs once the caller lets go of it)."""
        self._generation += 1
        suffix = "" if self._generation == 1 else f"-{self._generation}"
        thread = threading.Thread(target=self._loop, name=f"spine-{self.kind}{suffix}", daemon=True)
        thread.start()
        return thread

    def _loop(self) -> None:
        name_this_thread(threading.current_thread().name)
        me = threading.current_thread()
        while True:
            with self._changed:
                while self._thread is me and not self._stopping and not self._queue:
                    self._changed.wait()
                if self._thread is not me or self._stopping:
                    return
                task = self._queue.popleft()
                task.started_at_s = self._monotonic()
                self._running = task
            failure = None if task.stop.is_set() else self._outputs(me, task)  # cancelled while queued: never runs
            self._end(me, task, failure)

    def _outputs(self, me: threading.Thread, task: _Task) -> str | None:
        """Runs the job, posting its outputs until it ends or is cancelled; why it failed, if it did."""
        try:
            outputs = task.job.run()
        except Exception as error:  # an engine failure is a fact for the spine, not a crash
            return _why(error)
        failure: str | None = None
        try:
            for output in outputs:
                if output.pace:
                    task.stop.wait(output.cost_samples / self._rate_hz)  # at once if the turn is cancelled
                if not self._emit(me, task, output.event):
                    break
        except Exception as error:
            failure = _why(error)
        try:
            outputs.close()  # stops a generator mid-way (Piper stops synthesising when its generator closes)
        except Exception as error:  # its clean-up failed: the job has ended all the same, and says why
            failure = failure or _why(error)
        return failure

    def _emit(self, me: threading.Thread, task: _Task, event: Event) -> bool:
        """Posts one output unless the job was cancelled or its thread abandoned; False: stop the job."""
        with self._lock:
            if self._thread is not me or task.cancelled_at_s is not None:
                return False
            self._post(event)
            return True

    def _end(self, me: threading.Thread, task: _Task, failure: str | None) -> None:
        with self._lock:
            if self._thread is not me:
                return  # abandoned: its leak was reported, and a late acknowledgement or failure is not news
            self._running = None
            if task.cancelled_at_s is not None:
                self._post(JobCancelled(task.job.turn, task.job.kind))
            elif failure is not None:
                self._post(EngineFailed(task.job.turn, task.job.kind, failure))


class ThreadRunner:
    """One worker thread per kind; the FSM thread only submits and cancels, and never waits for a worker (the
    locks it takes guard a few field updates and a post, never a job's code).

    `post` is called from worker threads with a worker's lock held: it must not block (an inbox put).
    `cancel_deadline_s` is how long a cancelled job has to acknowledge before it counts as leaked.
    `on_leak(turn, kind, waited_ms)` is called from whichever thread runs `check_leaks` (the watchdog's).
    `monotonic` is the clock for cancel times and deadlines (injected by tests, with `watchdog=False`).
    """

    def __init__(
        self,
        post: Callable[[Event], None],
        rate_hz: int,
        *,
        cancel_deadline_s: float = CANCEL_DEADLINE_S,
        on_leak: Callable[[int, JobKind, float], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        watchdog: bool = True,
    ) -> None:
        self._deadline_s = cancel_deadline_s
        self._on_leak = on_leak
        self._monotonic = monotonic
        self._workers = {kind: _Worker(kind, post, rate_hz, monotonic) for kind in KINDS}
        self.jobs_started = 0
        self._watch_changed = threading.Condition()  # a cancel registered a deadline, or the runner stops
        self._stopping = False
        if watchdog:
            threading.Thread(target=self._watch, name="spine-job-watchdog", daemon=True).start()

    @property
    def leaks(self) -> int:
        """Cancelled jobs that missed their acknowledgement deadline so far (each one's thread was replaced)."""
        return sum(worker.leaks for worker in self._workers.values())

    def start(self, job: Job, now: int) -> None:
        self.jobs_started += 1
        self._workers[job.kind].submit(_Task(job))

    def cancel_turn(self, turn: int, now: int) -> None:
        at_s = self._monotonic()
        aborts = [abort for worker in self._workers.values() for abort in worker.cancel(turn, at_s)]
        for abort in aborts:
            with contextlib.suppress(Exception):  # a failed abort shows up as a leak if the job does not stop
                abort()
        with self._watch_changed:
            self._watch_changed.notify()

    def next_ack_due(self) -> float | None:
        """The earliest time (on the `monotonic` clock) a cancelled job must have acknowledged by, if any."""
        dues = [worker.next_ack_due(self._deadline_s) for worker in self._workers.values()]
        return min((due for due in dues if due is not None), default=None)

    def check_leaks(self, now_s: float) -> list[Leak]:
        """Jobs whose acknowledgement is overdue at `now_s`: each is reported, and its worker thread replaced."""
        found = [worker.check_leak(now_s, self._deadline_s) for worker in self._workers.values()]
        leaks = [leak for leak in found if leak is not None]
        if self._on_leak is not None:
            for leak in leaks:
                self._on_leak(leak.turn, leak.kind, leak.waited_ms)
        return leaks

    def stop(self, join_timeout_s: float = STOP_JOIN_S) -> list[Leak]:
        """Stop taking jobs, drop the queued ones, cancel the running ones (calling their abort hooks), and give
        them up to `join_timeout_s` in all to return. Returns the jobs whose thread was still running then:
        each is abandoned (it posts nothing more) and counted as a leak - never waited on longer. They are
        returned, not reported to `on_leak`: after a stop nobody reads the inbox, so the caller logs them.

        Why wait at all: a job inside native code (Piper's ONNX Runtime, whisper.cpp) while the interpreter
        finalises aborts the process. Measured: `spine run` stopped by SIGTERM mid-story exited with SIGABRT
        ("terminate called without an active exception") in 1 of about 8 runs of tests/test_run_pulse.py. A
        caller that gets leaks back should therefore not finalise the interpreter (`os._exit` after its log)."""
        with self._watch_changed:
            self._stopping = True
            self._watch_changed.notify()
        at_s = self._monotonic()
        aborts = [abort for worker in self._workers.values() for abort in worker.stop(at_s)]
        for abort in aborts:
            with contextlib.suppress(Exception):  # a failed abort shows up as a leak if the job does not stop
                abort()
        until_s = time.monotonic() + join_timeout_s
        for worker in self._workers.values():
            worker.join(max(0.0, until_s - time.monotonic()))
        found = [worker.abandon_if_running(self._monotonic()) for worker in self._workers.values()]
        return [leak for leak in found if leak is not None]

    def _watch(self) -> None:
        while True:
            with self._watch_changed:
                if self._stopping:
                    return
                due_s = self.next_ack_due()
                wait_s = None if due_s is None else due_s - self._monotonic()
                if wait_s is None or wait_s > 0:
                    self._watch_changed.wait(wait_s)
                    continue
            self.check_leaks(self._monotonic())


_NO_THREAD = threading.Thread(name="spine-no-worker")
"""A worker's `_thread` once its stuck thread was abandoned at the stop: never started, never anyone's `me`."""


def _why(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"
