"""The SPSC sample ring: wrap-around, both overrun policies, silence on underrun, cuts, no allocation in the hot
paths, a model-based property test, and a real two-thread hammer (no locks, no sleeps)."""

from __future__ import annotations

import random
import sys
import threading
import tracemalloc
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device.audio.ring import Overrun, SpscRing

POLICIES: tuple[Overrun, ...] = ("refuse", "drop_oldest")


def ramp(first: int, count: int) -> npt.NDArray[np.int16]:
    """`count` consecutive sample values starting at `first`, wrapping like int16 does."""
    return np.arange(first, first + count, dtype=np.int64).astype(np.int16)


def read_all(ring: SpscRing, size: int) -> list[int]:
    out = np.full(size, -1, np.int16)
    got = ring.read_into(out)
    values: list[int] = out[:got].tolist()
    return values


# ---------------------------------------------------------------- construction


@pytest.mark.parametrize("capacity", [1, 2, 16, 1024, 1 << 20])
def test_power_of_two_capacities_are_accepted(capacity: int) -> None:
    ring = SpscRing(capacity)
    assert (ring.capacity, ring.free(), ring.available(), ring.written, ring.read) == (capacity, capacity, 0, 0, 0)


@pytest.mark.parametrize(
    ("capacity", "nearest"), [(3, "2 and 4"), (1000, "512 and 1024"), (1600, "1024 and 2048"), (48000, "32768 and")]
)
def test_other_capacities_are_refused_naming_the_nearest_powers(capacity: int, nearest: str) -> None:
    with pytest.raises(ValueError, match=f"power of two.*got {capacity}.*nearest are {nearest}"):
        SpscRing(capacity)


@pytest.mark.parametrize("capacity", [0, -4])
def test_non_positive_capacities_are_refused(capacity: int) -> None:
    with pytest.raises(ValueError, match="positive power of two"):
        SpscRing(capacity)


def test_unknown_policy_and_wrong_dtypes_are_refused() -> None:
    with pytest.raises(ValueError, match="overrun must be"):
        SpscRing(16, "block")  # type: ignore[arg-type]  # the point is the runtime check
    ring = SpscRing(16)
    with pytest.raises(TypeError, match="1-D int16"):
        ring.write(np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="1-D int16"):
        ring.read_into(np.zeros((2, 2), np.int16))


# ---------------------------------------------------------------- wrap-around


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(("offset", "block"), [(10, 6), (10, 7), (13, 16), (15, 2), (16, 16), (1, 15)])
def test_blocks_straddling_the_end_come_back_in_order(policy: Overrun, offset: int, block: int) -> None:
    ring = SpscRing(16, policy)
    ring.write(ramp(0, offset))
    assert read_all(ring, offset) == list(range(offset))  # now the next block starts at slot offset & 15
    assert ring.write(ramp(offset, block)) == block
    assert ring.available() == block
    assert read_all(ring, 32) == list(range(offset, offset + block))
    assert (ring.written, ring.read, ring.overrun_samples) == (offset + block, offset + block, 0)


def test_reads_straddling_the_end_in_small_pieces() -> None:
    ring = SpscRing(8)
    ring.write(ramp(0, 6))
    assert read_all(ring, 6) == [0, 1, 2, 3, 4, 5]
    ring.write(ramp(6, 8))  # slots 6, 7, 0, ..., 5
    assert read_all(ring, 3) == [6, 7, 8]  # slots 6, 7, 0: the read itself wraps
    assert read_all(ring, 3) == [9, 10, 11]
    assert read_all(ring, 3) == [12, 13]


def test_counting_sequence_wraps_like_int16() -> None:
    ring = SpscRing(4)
    ring.write(ramp(32766, 4))
    assert read_all(ring, 4) == [32766, 32767, -32768, -32767]


def test_empty_write_and_empty_read_change_nothing() -> None:
    ring = SpscRing(8, "drop_oldest")
    assert ring.write(np.zeros(0, np.int16)) == 0
    assert ring.read_into(np.zeros(0, np.int16)) == 0
    assert (ring.written, ring.read, ring.overrun_samples) == (0, 0, 0)


# ---------------------------------------------------------------- refuse


def test_refuse_takes_only_the_free_space_and_never_overwrites_unread_data() -> None:
    ring = SpscRing(8, "refuse")
    assert ring.write(ramp(0, 5)) == 5
    assert ring.free() == 3
    assert ring.write(ramp(5, 5)) == 3  # partial: the producer keeps samples 8 and 9
    assert ring.free() == 0
    assert ring.write(ramp(8, 2)) == 0  # full: refused, nothing touched
    assert read_all(ring, 2) == [0, 1]
    assert ring.free() == 2
    assert ring.write(ramp(8, 2)) == 2
    assert read_all(ring, 100) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert ring.overrun_samples == 0


# ---------------------------------------------------------------- drop_oldest


def test_drop_oldest_consumer_skips_ahead_and_counts_exactly() -> None:
    ring = SpscRing(8, "drop_oldest")
    assert ring.write(ramp(0, 5)) == 5
    assert ring.write(ramp(5, 7)) == 7  # written 12, read 0: samples 0..3 are gone
    assert ring.overrun_samples == 0  # the producer does not count: only the consumer writes this field
    assert ring.available() == 8
    assert read_all(ring, 3) == [4, 5, 6]
    assert (ring.overrun_samples, ring.read) == (4, 7)
    assert read_all(ring, 100) == [7, 8, 9, 10, 11]
    assert ring.overrun_samples == 4


def test_drop_oldest_block_longer_than_the_ring_keeps_its_tail() -> None:
    ring = SpscRing(8, "drop_oldest")
    ring.write(ramp(0, 3))
    assert ring.write(ramp(3, 20)) == 20
    assert read_all(ring, 100) == list(range(15, 23))
    assert ring.overrun_samples == 15


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


# ---------------------------------------------------------------- underrun, skip_to


def test_read_or_silence_zero_fills_the_shortfall_and_counts_it() -> None:
    ring = SpscRing(16)
    ring.write(ramp(1, 3))
    out = np.full(8, 99, np.int16)
    assert ring.read_or_silence(out) == 3
    assert out.tolist() == [1, 2, 3, 0, 0, 0, 0, 0]
    assert ring.underrun_samples == 5
    assert ring.read_or_silence(out) == 0
    assert out.tolist() == [0] * 8
    assert ring.underrun_samples == 13
    ring.write(ramp(4, 8))
    assert ring.read_or_silence(out) == 8  # a full read is not an underrun
    assert ring.underrun_samples == 13
    ring.note_underrun(7)  # a consumer filling silence itself after read_into
    assert ring.underrun_samples == 20
    with pytest.raises(ValueError, match=">= 0"):
        ring.note_underrun(-1)


def test_skip_to_drops_before_the_counter_never_backwards_never_past_written() -> None:
    ring = SpscRing(16)
    ring.write(ramp(0, 10))
    assert read_all(ring, 2) == [0, 1]
    assert ring.skip_to(6) == 4
    assert ring.readable_from() == 6
    assert ring.skip_to(3) == 0  # behind the read counter: nothing to do
    assert read_all(ring, 2) == [6, 7]
    assert ring.skip_to(50) == 2  # clamped to written
    assert (ring.read, ring.available(), ring.free(), ring.overrun_samples) == (10, 0, 16, 0)
    ring.write(ramp(10, 3))
    assert read_all(ring, 8) == [10, 11, 12]


# ---------------------------------------------------------------- no allocation in the hot paths


def measure_hot_paths(block_samples: int, cycles: int) -> tuple[SpscRing, int, int]:
    """Run `cycles` write/read_into and write/read_or_silence pairs under tracemalloc; return the ring, the net
    growth in bytes (snapshot before versus after) and the peak above the starting point."""
    ring = SpscRing(8192, "drop_oldest")
    block = ramp(0, block_samples)
    out = np.zeros(block_samples, np.int16)
    silence_out = np.zeros(block_samples + 40, np.int16)

    def run(count: int) -> None:
        for _ in range(count):
            ring.write(block)
            ring.read_into(out)
            ring.write(block)
            ring.read_or_silence(silence_out)  # a short read: the zero-fill and underrun path too

    run(100)  # warm up: caches, and the counters already past the small-int cache
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        tracemalloc.reset_peak()
        run(cycles)
        _, peak = tracemalloc.get_traced_memory()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    not_tracemalloc = [tracemalloc.Filter(False, tracemalloc.__file__)]  # the first snapshot's own bookkeeping
    diff = after.filter_traces(not_tracemalloc).compare_to(before.filter_traces(not_tracemalloc), "filename")
    return ring, sum(stat.size_diff for stat in diff), peak


def test_hot_paths_do_not_allocate() -> None:
    ring, growth, _ = measure_hot_paths(160, 10_000)
    assert ring.written == 2 * 160 * 10_100
    assert ring.underrun_samples == 40 * 10_100
    # What remains is a handful of int objects (the counters' current values), not anything per cycle.
    assert growth <= 1024, growth


def test_hot_paths_make_no_transient_copies() -> None:
    # With 4096-sample blocks any temporary the size of a block (np.concatenate, a fancy-indexed gather, an
    # astype) would push the peak past 8 KiB; the slice views the copies need stay around 1 KiB.
    _, _, peak = measure_hot_paths(4096, 200)
    assert peak < 4096, peak


# ---------------------------------------------------------------- model-based property test


@dataclass
class Model:
    """The ring as a list: what the consumer has not read yet, with the producer's whole history."""

    capacity: int
    policy: Overrun
    pending: deque[int] = field(default_factory=deque)
    next_value: int = 0
    overrun: int = 0
    underrun: int = 0

    def write(self, count: int) -> int:
        if self.policy == "refuse":
            count = min(count, self.capacity - len(self.pending))
        self.pending.extend(range(self.next_value, self.next_value + count))
        self.next_value += count
        return count

    def catch_up(self) -> None:
        excess = len(self.pending) - self.capacity
        for _ in range(max(0, excess)):
            self.pending.popleft()
        self.overrun += max(0, excess)

    def read(self, count: int) -> list[int]:
        self.catch_up()
        return [self.pending.popleft() for _ in range(min(count, len(self.pending)))]

    def skip(self, samples_back_from_end: int) -> int:
        """skip_to(written - samples_back_from_end) as the model sees it."""
        keep = min(samples_back_from_end, len(self.pending))
        dropped = len(self.pending) - keep
        for _ in range(dropped):
            self.pending.popleft()
        return dropped

    def available(self) -> int:
        return min(len(self.pending), self.capacity)


def as_int16(values: list[int]) -> list[int]:
    wrapped: list[int] = np.array(values, np.int64).astype(np.int16).tolist()
    return wrapped


operation = st.one_of(
    st.tuples(st.just("write"), st.integers(0, 40)),
    st.tuples(st.just("read"), st.integers(0, 40)),
    st.tuples(st.just("silence"), st.integers(0, 40)),
    st.tuples(st.just("skip"), st.integers(0, 40)),
)


@pytest.mark.parametrize("policy", POLICIES)
@settings(max_examples=300, deadline=None)
@given(capacity=st.sampled_from([16, 32]), operations=st.lists(operation, max_size=60))
def test_ring_behaves_like_a_list(policy: Overrun, capacity: int, operations: list[tuple[str, int]]) -> None:
    ring = SpscRing(capacity, policy)
    model = Model(capacity, policy)
    for name, size in operations:
        if name == "write":
            expected_count = model.write(size)
            # Values start high so the int16 wrap is inside the tested range.
            assert ring.write(ramp(32700 + model.next_value - expected_count, size)) == expected_count
        elif name == "read":
            expected = model.read(size)
            out = np.full(size, 7, np.int16)
            got = ring.read_into(out)
            assert out[:got].tolist() == as_int16([32700 + v for v in expected])
            assert out[got:].tolist() == [7] * (size - got)  # the rest of `out` is left alone
        elif name == "silence":
            expected = model.read(size)
            model.underrun += size - len(expected)
            out = np.full(size, 7, np.int16)
            assert ring.read_or_silence(out) == len(expected)
            assert out.tolist() == as_int16([32700 + v for v in expected]) + [0] * (size - len(expected))
        else:
            before = ring.overrun_samples
            assert ring.skip_to(ring.written - size) == model.skip(size)
            assert ring.overrun_samples == before
        assert ring.available() == model.available()
        assert ring.written - ring.read >= 0
        if policy == "refuse":
            assert ring.free() == capacity - len(model.pending)
        assert (ring.overrun_samples, ring.underrun_samples) == (model.overrun, model.underrun)


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
