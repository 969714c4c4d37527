"""Jobs and the runners that run them.

A job is a generator of `Output`s: each output is an event to post and the modelled cost (in samples) of
producing it. A job never decides; it computes and reports. Two runners run the same jobs:

* `VirtualRunner` (virtual clock): runs a job to the end when it starts, and schedules each output at its
  modelled finishing time. Each kind of worker is serial (one ASR, one reply, one TTS at a time), so a job
  starts when its worker is free. Same scene, same times: the event log is reproducible byte for byte.
* `ThreadRunner` (wall clock): one thread per kind posts each output as it is produced; `pace` outputs wait
  their cost first (a streaming reply's token rate is behaviour, not compute).

Cancelling a turn stops all its jobs; each stopped job acknowledges with `JobCancelled` (invariant 6). A
result already posted before the cancel reaches the spine, which drops it as data (invariant 2).
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass

from device.core.events import EngineFailed, Event, JobCancelled, JobKind


@dataclass(frozen=True)
class Output:
    event: Event
    cost_samples: int
    pace: bool = False


@dataclass(frozen=True)
class Job:
    turn: int
    kind: JobKind
    run: Callable[[], Generator[Output, None, None]]


class VirtualRunner:
    """Deterministic: outputs become due at start time + cumulative modelled cost."""

    def __init__(self, ack_samples: int) -> None:
        self._ack_samples = ack_samples
        self._heap: list[tuple[int, int, int, JobKind, Event]] = []  # (due, order, turn, kind, event)
        self._order = itertools.count()
        self._free_at: dict[JobKind, int] = {}
        self.jobs_started = 0

    def start(self, job: Job, now: int) -> None:
        self.jobs_started += 1
        at = max(now, self._free_at.get(job.kind, 0))
        try:
            for output in job.run():
                at += output.cost_samples
                self._push(at, job.turn, job.kind, output.event)
        except Exception as error:  # an engine failure is a fact for the spine, not a crash
            self._push(at, job.turn, job.kind, EngineFailed(job.turn, job.kind, f"{type(error).__name__}: {error}"))
        self._free_at[job.kind] = at

    def cancel_turn(self, turn: int, now: int) -> None:
        pending = [item for item in self._heap if item[2] == turn]
        if not pending:
            return
        self._heap = [item for item in self._heap if item[2] != turn]
        heapq.heapify(self._heap)
        for kind in sorted({item[3] for item in pending}):
            self._free_at[kind] = now  # the worker stops at once and is free for the next job
            self._push(now + self._ack_samples, turn, kind, JobCancelled(turn, kind))

    def pop_due(self, now: int) -> list[Event]:
        due: list[Event] = []
        while self._heap and self._heap[0][0] <= now:
            due.append(heapq.heappop(self._heap)[4])
        return due

    def next_due(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def idle(self) -> bool:
        return not self._heap

    def _push(self, at: int, turn: int, kind: JobKind, event: Event) -> None:
        heapq.heappush(self._heap, (at, next(self._order), turn, kind, event))


class _Worker:
    def __init__(self, kind: JobKind, post: Callable[[Event], None], rate_hz: int) -> None:
        self.kind = kind
        self._post = post
        self._rate_hz = rate_hz
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()  # guards _cancelled between the FSM thread and this worker
        self._wakeup = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"spine-{kind}", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._lock:
            self._cancelled.discard(job.turn)
        self._jobs.put(job)

    def cancel(self, turn: int) -> None:
        with self._lock:
            self._cancelled.add(turn)
        self._wakeup.set()

    def stop(self) -> None:
        self._jobs.put(None)
        self._wakeup.set()

    def _is_cancelled(self, turn: int) -> bool:
        with self._lock:
            return turn in self._cancelled

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._run(job)

    def _run(self, job: Job) -> None:
        if self._is_cancelled(job.turn):  # cancelled while it waited in the queue: never starts
            self._post(JobCancelled(job.turn, job.kind))
            return
        outputs = job.run()
        try:
            for output in outputs:
                if output.pace:
                    self._wakeup.clear()
                    # A cancel that landed while this output was computed set the flag before clear(): look.
                    if not self._is_cancelled(job.turn):
                        self._wakeup.wait(output.cost_samples / self._rate_hz)
                if self._is_cancelled(job.turn):
                    break
                self._post(output.event)
            else:
                return
        except Exception as error:
            self._post(EngineFailed(job.turn, job.kind, f"{type(error).__name__}: {error}"))
            return
        finally:
            outputs.close()  # stops a generator mid-way (Piper stops synthesising when its generator closes)
        self._post(JobCancelled(job.turn, job.kind))


class ThreadRunner:
    """One worker thread per kind; the FSM thread only submits and cancels."""

    def __init__(self, post: Callable[[Event], None], rate_hz: int) -> None:
        kinds: tuple[JobKind, ...] = ("asr", "reply", "tts")
        self._workers = {kind: _Worker(kind, post, rate_hz) for kind in kinds}
        self._turns: dict[int, set[JobKind]] = {}
        self.jobs_started = 0

    def start(self, job: Job, now: int) -> None:
        self.jobs_started += 1
        self._turns.setdefault(job.turn, set()).add(job.kind)
        self._workers[job.kind].submit(job)

    def cancel_turn(self, turn: int, now: int) -> None:
        for kind in sorted(self._turns.pop(turn, set())):
            self._workers[kind].cancel(turn)

    def stop(self) -> None:
        for worker in self._workers.values():
            worker.stop()
