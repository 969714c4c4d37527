"""The SPSC sample ring across its two threads: the interleavings that matter pinned down without threads, and a
real two-thread hammer (no locks, no sleeps)."""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from device.audio.ring import Overrun, SpscRing
from tests.ring_samples import POLICIES, ramp, read_all

# ---------------------------------------------------------------- interleavings pinned down, without threads


class Interrupting(np.ndarray):
    """An int16 array that runs `hook` (the other thread's move) the first time the ring copies into or out of
    it: an interleaving the GIL makes rare in the hammer test, made certain here."""

    hook: Callable[[], object] | None = None

    def __setitem__(self, key: Any, value: Any) -> None:
        self._fire()
        super().__setitem__(key, value)

    def __getitem__(self, key: Any) -> Any:
        self._fire()
        return super().__getitem__(key)

    def _fire(self) -> None:
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()


def interrupting(values: npt.NDArray[np.int16], hook: Callable[[], object]) -> Interrupting:
    array = values.view(Interrupting)
    array.hook = hook
    return array


def test_drop_oldest_discards_a_copy_the_producer_overwrote_under_the_consumer() -> None:
    ring = SpscRing(8, "drop_oldest")
    ring.write(ramp(0, 8))
    # The producer laps the consumer's slots 0..2 while the consumer is copying counters 0..3 out.
    out = interrupting(np.zeros(4, np.int16), lambda: ring.write(ramp(8, 3)))
    assert ring.read_into(out) == 4
    assert np.asarray(out).tolist() == [3, 4, 5, 6]  # never the torn [8, 9, 10, 3]
    assert (ring.overrun_samples, ring.read) == (3, 7)


def test_drop_oldest_gives_up_rather_than_hand_on_torn_samples() -> None:
    ring = SpscRing(8, "drop_oldest")
    ring.write(ramp(0, 8))

    class Lapping(Interrupting):
        def _fire(self) -> None:  # the producer laps the ring on every single copy
            ring.write(ramp(ring.written, 8))

    assert ring.read_into(np.zeros(4, np.int16).view(Lapping)) == 0
    assert ring.overrun_samples == ring.read > 0  # every sample skipped so far was counted
    # The next read (nobody lapping) finds the last 8 samples intact and counts everything before them.
    assert read_all(ring, 8) == ramp(ring.written - 8, 8).tolist()
    assert ring.overrun_samples == ring.written - 8


def test_consumer_never_sees_samples_the_producer_has_not_finished_copying() -> None:
    ring = SpscRing(8, "refuse")
    ring.write(ramp(0, 2))
    seen: list[int] = []
    # The consumer runs while the producer is in the middle of copying samples 2..5 in.
    samples = interrupting(ramp(2, 4), lambda: seen.extend(read_all(ring, 8)))
    assert ring.write(samples) == 4
    assert seen == [0, 1]
    assert read_all(ring, 8) == [2, 3, 4, 5]


def test_producer_never_overwrites_samples_the_consumer_is_copying_out() -> None:
    ring = SpscRing(8, "refuse")
    ring.write(ramp(0, 8))
    taken: list[int] = []
    # The producer runs while the consumer is in the middle of copying counters 0..3 out.
    out = interrupting(np.zeros(4, np.int16), lambda: taken.append(ring.write(ramp(8, 8))))
    assert ring.read_into(out) == 4
    assert np.asarray(out).tolist() == [0, 1, 2, 3]
    assert taken == [0]  # the ring was still full: the slots being copied were not free yet
    assert ring.free() == 4


# ---------------------------------------------------------------- two real threads


@pytest.mark.parametrize("policy", POLICIES)
def test_two_threads_hammering_keep_the_sequence_continuous(policy: Overrun) -> None:
    """A producer and a consumer thread share only the ring. The consumer checks every sample against the
    counting sequence: with `refuse` there is never a gap; with `drop_oldest` gaps appear exactly where the
    overrun counter grew, by exactly that much.

    Blocks of up to nearly a ring make NumPy release the GIL inside the copies, so on two cores the producer's
    and the consumer's copies really overlap in time; a tiny switch interval adds interleavings between calls.
    (Publishing a counter before its copy, or dropping the consumer's torn-copy check, fails this test.)"""
    total = 2_000_000
    sequence = ramp(0, total)
    ring = SpscRing(4096, policy)
    start, producer_done, consumer_failed = threading.Event(), threading.Event(), threading.Event()
    failures: list[str] = []
    received = [0, 0]  # samples received, samples lost to counted overrun

    def produce() -> None:
        sizes = random.Random(1).choices(range(1, 4000), k=total // 100)
        start.wait()
        at = 0
        for size in sizes:
            if at >= total:
                break
            end = min(total, at + size)
            # drop_oldest never has to wait, but running free it would finish before the consumer got going.
            # Staying within two laps of the consumer keeps both threads busy together and still overruns.
            while ring.written - ring.read > 2 * ring.capacity and not consumer_failed.is_set():
                pass
            # refuse: offer the rest again until it fits (a spin; the short switch interval lets the consumer in).
            while at < end and not consumer_failed.is_set():
                at += ring.write(sequence[at:end])
        producer_done.set()

    def consume() -> None:
        sizes = random.Random(2).choices(range(1, 4000), k=1 << 16)
        buffer = np.zeros(max(sizes), np.int16)
        at = lost = 0
        i = 0
        start.wait()
        while True:
            done = producer_done.is_set()  # checked before reading, so a last read after it drains everything
            out = buffer[: sizes[i & 0xFFFF]]
            i += 1
            got = ring.read_into(out)
            gap = ring.overrun_samples - lost
            if gap:
                if policy == "refuse":
                    failures.append(f"refuse ring skipped {gap} samples at {at}")
                    consumer_failed.set()
                    return
                at += gap
                lost += gap
            if got and not np.array_equal(out[:got], sequence[at : at + got]):
                failures.append(f"wrong samples at {at}..{at + got} (got {out[:8].tolist()}...)")
                consumer_failed.set()
                return
            at += got
            if done and got == 0 and ring.available() == 0:
                break
        received[:] = [at - lost, lost]

    threads = [threading.Thread(target=produce, daemon=True), threading.Thread(target=consume, daemon=True)]
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for thread in threads:
            thread.start()
        start.set()
        for thread in threads:
            thread.join(timeout=20)
    finally:
        sys.setswitchinterval(old_interval)
    assert not any(thread.is_alive() for thread in threads), "hammer threads did not finish"
    assert failures == []
    got, lost = received
    assert got + lost == total == ring.written
    assert lost == ring.overrun_samples
    if policy == "refuse":
        assert lost == 0
    else:
        assert lost > 0, "the drop_oldest hammer never overran: it tested nothing"
