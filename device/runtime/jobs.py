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

Cancellation with proof (wall clock)
------------------------------------
`ThreadRunner.cancel_turn` (in `device/runtime/job_threads.py`) never waits for a worker. For each job of the
turn not yet ended, it marks the job cancelled (from then on its worker posts nothing of it but the
acknowledgement), ends a paced wait at once,
and calls the job's `abort` hook right there on the cancelling thread: a remote reply stream shuts its socket
down, so a worker blocked reading it returns at once. The worker then closes the job's generator and posts
`JobCancelled`: exactly one per job that was cancelled before it ended; a job that ended first acks nothing.

A job that has not acknowledged `cancel_deadline_s` after its cancel has leaked: its thread is stuck in code
that neither looks at the flag nor was unblocked by the abort. `check_leaks(now_s)` finds it, counts it
(`leaks`), reports it to `on_leak(turn, kind, waited_ms)`, abandons its thread and starts a fresh one for
that kind on the same queue, so the next turn is not blocked. An abandoned thread posts nothing more, ever:
every post happens under the worker's lock after checking that the thread is still the current one, and the
thread exits when its job finally returns.

Who calls `check_leaks`: by default the runner's own watchdog thread. It sleeps until the earliest pending
acknowledgement deadline (`next_ack_due()`, so no polling while nothing is cancelled) and checks then. A
watchdog rather than the FSM loop, because it puts no work and no clock reading on the FSM thread, works
under any loop that drives the runner (`spine run`, `spine demo --clock wall`) without changing it, and a
leak is a wall-clock fact about threads, which is this module's business, not the spine's. Tests turn the
watchdog off (`watchdog=False`) and call `check_leaks` themselves with an injected clock (`monotonic`).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Generator
from dataclasses import dataclass

from device.core.events import EngineFailed, Event, JobCancelled, JobKind

KINDS: tuple[JobKind, ...] = ("asr", "reply", "tts")
CANCEL_DEADLINE_S = 0.5
"""Default time a cancelled job has to acknowledge before it counts as leaked."""
STOP_JOIN_S = 2.0
"""On stop, how long in all the cancelled running jobs get to return (a sentence of Piper takes ~0.2-1 s; a
cancelled one stops at its next output). Within `device.runtime.signals.STOP_BOUND_S`, the whole stop's bound."""


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
    abort: Callable[[], None] | None = None
    """Called on the cancelling thread when the job's turn is cancelled (before, while or just after it runs).
    It must not block; it makes a `run` blocked in I/O return at once (e.g. closes a remote stream). None: the
    cancel flag, looked at between outputs, is enough."""


@dataclass(frozen=True)
class Leak:
    """A cancelled job that did not acknowledge within the deadline; its worker thread was replaced."""

    turn: int
    kind: JobKind
    waited_ms: float
    """From the cancel to the check that found the job still running."""


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
