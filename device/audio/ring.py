"""A single-producer single-consumer ring of int16 samples between the RT audio callback and the FSM thread.

Who writes what (each field has exactly one writer; that is the whole synchronisation scheme):

    field              written by   read by             meaning
    _buf[slot]         producer     consumer            the samples; slot = counter & mask
    _claimed           producer     consumer            counter up to which the producer may be writing now
    _written           producer     producer, consumer  samples published so far (monotonic)
    _read              consumer     consumer, producer  samples consumed or skipped so far (monotonic)
    _overrun_samples   consumer     anyone (stats)      samples lost because the producer lapped the consumer
    _underrun_samples  consumer     anyone (stats)      silence the consumer played for want of samples

Theory of operation. The counters count samples since the ring was made and never wrap (Python ints), so
`written - read` is the fill level without any "full versus empty" ambiguity, and a sample's slot is
`counter & mask` (hence the power-of-two capacity). The RT callback must never wait (docs/architecture.md, invariant 8):
no locks, so the two threads agree through publication order alone:

* the producer copies the samples in first and only then stores `_written`; the consumer copies the samples
  out first and only then stores `_read`. A side that sees a new counter value therefore also sees the copy
  that preceded it.
* This is enough in CPython (3.11, with the GIL): a counter store is one STORE_ATTR of an int object, so the
  other thread sees the old or the new value, never a torn one; and the GIL is handed over with full memory
  barriers, so stores become visible in program order. NumPy may release the GIL inside a large copy, but the
  counter store comes after that call has returned (GIL reacquired), so the order still holds. A free-threaded
  build (PEP 703) would need real atomics here.

Two overrun policies, fixed at construction:

* `refuse` (playback ring, FSM → callback): `write` takes only what fits in `free()` and returns the count; the
  producer keeps the rest for later. The producer never touches a slot the consumer has not released, so
  nothing unread is ever overwritten.
* `drop_oldest` (capture ring, callback → FSM): the producer (the RT callback) always writes everything and
  never looks at `_read`. The consumer notices on its next read that it fell behind, skips to the oldest
  sample still intact and adds the skipped count to `overrun_samples`; so every counter keeps one writer.
  Because the producer may be overwriting the very slots the consumer is copying, the producer announces
  `_claimed` (the end of the block it is about to write) *before* copying, and the consumer re-checks
  `_claimed` *after* its copy: samples older than `_claimed - capacity` may be torn and are discarded and
  counted as overrun, never handed on. In `refuse` mode `_claimed - capacity <= _read` always, so the check
  never fires there.

Hot paths (`write`, `read_into`, `read_or_silence`, `skip_to`) do at most two slice copies and integer
updates: no buffer allocation (only the transient view objects any slicing makes), no locks, no I/O.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

Overrun = Literal["drop_oldest", "refuse"]

_INT16 = np.dtype(np.int16)

# How often the consumer retries a copy that the producer overwrote under it (drop_oldest only). Each retry
# means the producer lapped the whole ring during one copy, which a real-time producer cannot keep doing; the
# bound only makes termination obvious. After the last failed try the read returns 0 (nothing torn escapes).
_MAX_COPY_ATTEMPTS = 4


class SpscRing:
    """Lock-free SPSC ring of int16 samples: one producer thread calls `write`/`free`, one consumer thread
    calls `read_into`/`read_or_silence`/`skip_to`/`note_underrun`/`available`. See the module docstring."""

    __slots__ = (
        "_buf",
        "_capacity",
        "_claimed",
        "_mask",
        "_overrun_samples",
        "_policy",
        "_read",
        "_refuse",
        "_underrun_samples",
        "_written",
    )

    def __init__(self, capacity_samples: int, overrun: Overrun = "refuse") -> None:
        """`capacity_samples`: a power of two (slot = counter & mask). `overrun`: what a write into a full
        ring does, `refuse` (take only what fits) or `drop_oldest` (overwrite; the consumer counts the loss)."""
        if isinstance(capacity_samples, bool) or not isinstance(capacity_samples, int):
            raise TypeError(f"capacity_samples must be an int, got {type(capacity_samples).__name__}")
        if capacity_samples < 1 or capacity_samples & (capacity_samples - 1):
            raise ValueError(_not_power_of_two(capacity_samples))
        if overrun not in ("drop_oldest", "refuse"):
            raise ValueError(f"overrun must be 'drop_oldest' or 'refuse', got {overrun!r}")
        # Preallocated once: the hot paths only copy into and out of this buffer.
        self._buf: npt.NDArray[np.int16] = np.zeros(capacity_samples, np.int16)
        self._capacity = capacity_samples
        self._mask = capacity_samples - 1
        self._policy: Overrun = overrun
        self._refuse = overrun == "refuse"  # a bool test is cheaper than a string compare per write
        self._written = 0
        self._claimed = 0
        self._read = 0
        self._overrun_samples = 0
        self._underrun_samples = 0

    # ---------------------------------------------------------------- read-only views of the fields

    @property
    def capacity(self) -> int:
        """Samples the ring holds."""
        return self._capacity

    @property
    def overrun_policy(self) -> Overrun:
        """What a write into a full ring does."""
        return self._policy

    @property
    def written(self) -> int:
        """Samples published by the producer since creation (monotonic; readable by both sides)."""
        return self._written

    @property
    def read(self) -> int:
        """Samples consumed or skipped by the consumer since creation (monotonic; readable by both sides)."""
        return self._read

    def readable_from(self) -> int:
        """The sample counter the consumer's next read starts at (before any overrun skip): `read`."""
        return self._read

    @property
    def overrun_samples(self) -> int:
        """Samples the producer overwrote before the consumer read them (drop_oldest; counted by the consumer)."""
        return self._overrun_samples

    @property
    def underrun_samples(self) -> int:
        """Samples of silence the consumer substituted for missing data (see `read_or_silence`)."""
        return self._underrun_samples

    # ---------------------------------------------------------------- producer side

    def free(self) -> int:
        """Samples `write` would take now without overwriting unread data (producer side). It can only grow
        until the next write, because only the consumer changes `read`."""
        return max(0, self._capacity - (self._written - self._read))

    def write(self, samples: npt.NDArray[np.int16]) -> int:
        """Copy `samples` (1-D int16) in and publish them; return how many were taken.

        `refuse`: takes `min(len(samples), free())`, the caller keeps the rest. `drop_oldest`: takes all of
        them (of a block longer than the ring only the last `capacity` samples can survive)."""
        if samples.dtype != _INT16 or samples.ndim != 1:
            raise TypeError(f"write needs a 1-D int16 array, got {samples.ndim}-D {samples.dtype}")
        count = len(samples)
        written = self._written
        if self._refuse:
            # `_read` may grow while we copy; a stale value only makes us take less, never overwrite.
            count = min(count, self._capacity - (written - self._read))
            first_kept = 0
        else:
            first_kept = max(0, count - self._capacity)
        if count <= 0:
            return 0
        end = written + count
        # Announce before touching any slot, so a consumer that copied from these slots meanwhile knows it.
        self._claimed = end
        slot = (written + first_kept) & self._mask
        head = min(count - first_kept, self._capacity - slot)
        self._buf[slot : slot + head] = samples[first_kept : first_kept + head]
        if first_kept + head < count:  # the block wraps past the end of the buffer
            self._buf[: count - first_kept - head] = samples[first_kept + head : count]
        self._written = end  # publish only after the data is in
        return count

    # ---------------------------------------------------------------- consumer side

    def available(self) -> int:
        """Samples `read_into` could return now (consumer side); never more than the capacity."""
        written = self._written
        # `_claimed` is read after `_written` and stored before it by the producer, so claimed >= written here.
        start = min(max(self._read, self._claimed - self._capacity), written)
        return written - start

    def read_into(self, out: npt.NDArray[np.int16]) -> int:
        """Fill `out[:n]` (1-D int16, preallocated by the caller) with the next `n <= len(out)` samples and
        return `n`. What to do with `out[n:]` is the caller's business (see `read_or_silence`).

        drop_oldest: if the producer lapped us, first skip to the oldest intact sample and count the skipped
        samples in `overrun_samples`."""
        if out.dtype != _INT16 or out.ndim != 1:
            raise TypeError(f"read_into needs a 1-D int16 array, got {out.ndim}-D {out.dtype}")
        want = len(out)
        capacity = self._capacity
        first_read = self._read
        start = first_read
        count = 0
        for _ in range(_MAX_COPY_ATTEMPTS):
            written = self._written
            # Samples before `_claimed - capacity` are overwritten or being overwritten (drop_oldest only).
            start = min(max(start, self._claimed - capacity), written)
            count = min(want, written - start)
            if count <= 0:
                count = 0
                break
            slot = start & self._mask
            head = min(count, capacity - slot)
            out[:head] = self._buf[slot : slot + head]
            if head < count:  # the run wraps past the end of the buffer
                out[head:count] = self._buf[: count - head]
            if self._claimed - capacity <= start:
                break  # the producer touched none of the slots we copied: the copy is whole
            count = 0  # torn: retry from the oldest intact sample
        self._overrun_samples += start - first_read
        self._read = start + count  # publish only after the data is out: frees the slots for the producer
        return count

    def read_or_silence(self, out: npt.NDArray[np.int16]) -> int:
        """`read_into(out)`, then zero-fill the shortfall and count it as underrun. Returns the real samples."""
        got = self.read_into(out)
        want = len(out)
        if got < want:
            out[got:] = 0
            self._underrun_samples += want - got
        return got

    def note_underrun(self, samples: int) -> None:
        """Count `samples` of silence the consumer played in place of ring data (when it fills `out` itself)."""
        if samples < 0:
            raise ValueError(f"underrun samples must be >= 0, got {samples}")
        self._underrun_samples += samples

    def skip_to(self, counter: int) -> int:
        """Drop every sample before `counter` (a playback cut); return how many were dropped.

        Never moves backwards and never past `written` (there is nothing there to drop yet). Deliberately
        dropped samples are not an overrun."""
        current = self._read
        target = min(counter, self._written)
        if target <= current:
            return 0
        self._read = target
        return target - current


def _not_power_of_two(capacity_samples: int) -> str:
    if capacity_samples < 1:
        return f"capacity_samples must be a positive power of two (1, 2, 4, ...), got {capacity_samples}"
    below = 1 << (capacity_samples.bit_length() - 1)
    return (
        f"capacity_samples must be a power of two (slots are indexed by counter & mask), got {capacity_samples};"
        f" the nearest are {below} and {below * 2}"
    )
