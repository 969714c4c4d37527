"""The SPSC sample ring from one thread: construction, wrap-around, both overrun policies, silence on underrun,
cuts, no allocation in the hot paths, and a model-based property test. The interleavings of its two threads are in
tests/test_ring_concurrency.py."""

from __future__ import annotations

import tracemalloc
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device.audio.ring import Overrun, SpscRing
from tests.ring_samples import POLICIES, ramp, read_all

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
