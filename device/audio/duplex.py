"""The audio side of Spine: what the sound card callback does each period, as a plain object on arrays.

Three SPSC rings connect it to the FSM thread (see ring.py for who writes which counter):

    capture ring    callback writes the mic period       FSM thread reads it (hearing, ASR history)
    playback ring   FSM thread writes the current epoch  callback reads it through the gate
    reference ring  callback writes what it played       FSM thread reads it (echo reference, aligned)

The capture and reference rings are written with the same period at the same time, so sample k of one and
sample k of the other belong to the same device frame: the echo canceller can align them by counter.

Control goes one way through `controls` (a deque: append/popleft are atomic in CPython, no lock) and facts
come back through `reports`. The FSM side (`PlaybackFeeder`) turns the spine's commands into ring writes and
control messages; the callback side (`DuplexCallback`) never waits, never allocates beyond its preallocated
scratch, and counts every sample it hands to the device per epoch.

Gate rules (the same as the simulated card's, which uses this very code):
* one epoch plays at a time; samples of the ring before the open epoch's start are never played;
* cut: the next `fade_samples` of the epoch fade out, then the read index skips past everything the epoch
  wrote; `PlaybackStopped(epoch, played)` reports the exact count handed to the device (invariants 3, 4, 5);
* pause: fade out and hold the read index (nothing lost); resume: fade back in from exactly there;
* finish: when the read index reaches the epoch's end, `PlaybackDrained(epoch, played)`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from device.audio.ring import SpscRing
from device.core.events import Event, PlaybackDrained, PlaybackStopped

Audio = npt.NDArray[np.int16]
NO_EPOCH = 0


@dataclass(frozen=True)
class Control:
    """One instruction from the FSM side to the callback, with the ring position it refers to."""

    op: Literal["open", "finish", "cut", "pause", "resume"]
    epoch: int
    at_sample: int = 0  # open: where the epoch starts; finish: where it ends; cut: where to skip to


class DuplexCallback:
    """Per period: mic → capture ring; playback ring → gate → speaker; speaker samples → reference ring."""

    def __init__(
        self, capture: SpscRing, playback: SpscRing, reference: SpscRing, fade_samples: int, period_samples: int
    ) -> None:
        self.capture, self.playback, self.reference = capture, playback, reference
        self.controls: deque[Control] = deque()
        self.reports: deque[Event] = deque()
        self._fade_samples = fade_samples
        self._fade_out = (1.0 - np.arange(1, fade_samples + 1, dtype=np.float32) / fade_samples).astype(np.float32)
        # Rising from 1/n to exactly 1: the fade-in ends at full level and starts just above silence.
        self._fade_in = (np.arange(1, fade_samples + 1, dtype=np.float32) / fade_samples).astype(np.float32)
        self._scratch = np.zeros(max(period_samples, 4096), np.float32)
        self.epoch_tags = np.zeros(max(period_samples, 4096), np.int32)  # per sample of the last period (tests)
        # Gate state: written and read by the callback only.
        self._epoch = NO_EPOCH
        self._state: Literal["idle", "playing", "fading_out", "paused", "fading_in"] = "idle"
        self._end: int | None = None  # ring counter where the open epoch ends, once finished
        self._skip_to = 0
        self._fade_left = 0
        self._fade_then: Literal["stop", "pause"] = "stop"
        self.played_samples = 0  # of the open epoch
        self._last_ended = (NO_EPOCH, 0)  # (epoch, played) of the epoch that ended last: a late cut gets it
        # Controls that arrive while a cut epoch fades out wait here and are applied, in order, once it has
        # stopped: an open must not cut the fade short (a click) and what follows the open belongs after it.
        self._after_fade: deque[Control] = deque()
        self.underrun_samples = 0
        self.periods = 0

    @classmethod
    def with_rings(cls, ring_samples: int, fade_samples: int, period_samples: int) -> DuplexCallback:
        """The callback with its three rings: capture and reference drop their oldest samples when the FSM
        thread falls behind (counted); playback refuses what does not fit (the feeder keeps it)."""
        return cls(
            capture=SpscRing(ring_samples, overrun="drop_oldest"),
            playback=SpscRing(ring_samples, overrun="refuse"),
            reference=SpscRing(ring_samples, overrun="drop_oldest"),
            fade_samples=fade_samples,
            period_samples=period_samples,
        )

    # ------------------------------------------------------------------------------------------ per period
    def process(self, mic: Audio, out: Audio) -> None:
        """The whole callback: `mic` was just captured, `out` is the device's output buffer to fill."""
        self.play(out)
        self.capture.write(mic)

    def play(self, out: Audio) -> None:
        self.periods += 1
        while self.controls:
            self._apply(self.controls.popleft())
        n = len(out)
        tags = self.epoch_tags[:n]
        tags[:] = NO_EPOCH
        at = 0
        if self._state in ("fading_out", "fading_in"):
            at = self._fade(out, tags, at)
        if self._state == "playing":
            at = self._play(out, tags, at)
        out[at:] = 0
        self.reference.write(out)

    # ------------------------------------------------------------------------------------------ controls
    def _apply(self, control: Control) -> None:
        if self._state == "fading_out" and self._fade_then == "stop":
            self._after_fade.append(control)
            return
        if control.op == "open":
            if self._state != "idle":
                self._report_stopped()  # an epoch replaced without a cut: it simply ends here
            self._epoch, self._state, self._end, self.played_samples = control.epoch, "playing", None, 0
            self.playback.skip_to(max(control.at_sample, self.playback.read))
        elif control.op == "cut" and control.epoch == self._last_ended[0] and self._state == "idle":
            self.reports.append(PlaybackStopped(*self._last_ended))  # it ended before the cut arrived
        elif control.epoch != self._epoch or self._state == "idle":
            return  # orders for an epoch that is not the open one change nothing (invariant 4)
        elif control.op == "finish":
            self._end = control.at_sample
        elif control.op == "cut":
            self._skip_to = control.at_sample
            if self._state in ("paused",) or self.played_samples == 0:
                self.playback.skip_to(max(self._skip_to, self.playback.read))
                self._report_stopped()
            else:
                self._begin_fade("fading_out", "stop")
        elif control.op == "pause" and self._state == "playing":
            self._begin_fade("fading_out", "pause")
        elif control.op == "resume" and self._state == "paused":
            self._begin_fade("fading_in", "pause")

    def _begin_fade(self, state: Literal["fading_out", "fading_in"], then: Literal["stop", "pause"]) -> None:
        self._state, self._fade_then, self._fade_left = state, then, self._fade_samples

    # ------------------------------------------------------------------------------------------ playing
    def _fade(self, out: Audio, tags: npt.NDArray[np.int32], at: int) -> int:
        want = min(self._fade_left, len(out) - at, self._readable())
        got = self.playback.read_into(out[at : at + want])
        done = self._fade_samples - self._fade_left
        ramp = (self._fade_out if self._state == "fading_out" else self._fade_in)[done : done + got]
        scratch = self._scratch[:got]
        np.multiply(out[at : at + got], ramp, out=scratch)
        np.copyto(out[at : at + got], scratch, casting="unsafe")
        tags[at : at + got] = self._epoch
        self.played_samples += got
        self._fade_left -= got
        at += got
        ran_dry = got < want or self._readable() == 0
        if self._fade_left > 0 and not ran_dry:
            return at
        if self._state == "fading_in":
            self._state = "playing"
        elif self._fade_then == "pause":
            self._state = "paused"
        else:
            self.playback.skip_to(max(self._skip_to, self.playback.read))
            self._report_stopped()
            while self._after_fade and not (self._state == "fading_out" and self._fade_then == "stop"):
                self._apply(self._after_fade.popleft())
        return at

    def _play(self, out: Audio, tags: npt.NDArray[np.int32], at: int) -> int:
        want = min(len(out) - at, self._readable())
        got = self.playback.read_into(out[at : at + want])
        tags[at : at + got] = self._epoch
        self.played_samples += got
        at += got
        if self._end is not None and self.playback.read >= self._end:
            self.reports.append(PlaybackDrained(self._epoch, self.played_samples))
            self._last_ended = (self._epoch, self.played_samples)
            self._state = "idle"
        elif at < len(out):
            self.underrun_samples += len(out) - at
        return at

    def _readable(self) -> int:
        """Samples the open epoch may still play: never past its end, nor past a cut's skip point."""
        readable = self.playback.available()
        if self._end is not None:
            readable = min(readable, self._end - self.playback.read)
        if self._state == "fading_out" and self._fade_then == "stop":
            readable = min(readable, self._skip_to - self.playback.read)
        return max(readable, 0)

    def _report_stopped(self) -> None:
        self.reports.append(PlaybackStopped(self._epoch, self.played_samples))
        self._last_ended = (self._epoch, self.played_samples)
        self._state = "idle"

    def busy(self) -> bool:
        return self._state != "idle"

    def played_samples_of(self, epoch: int) -> int:
        """Samples of `epoch` handed to the device so far (device rate), for a reader on another thread: the open
        epoch's running count, the last ended epoch's final one, else 0. Reads two fields the callback writes
        whole (a torn pair is at most one period stale)."""
        if epoch == self._epoch and self._state != "idle":
            return self.played_samples
        ended_epoch, ended_played = self._last_ended
        return ended_played if ended_epoch == epoch else 0

    @property
    def fade_samples(self) -> int:
        return self._fade_samples


class PlaybackFeeder:
    """The FSM-thread side of playback: the executor's open/queue/finish/cut, and topping up the ring.

    Audio waits here until the ring has room (the ring holds seconds, a story holds minutes). Only the open
    epoch's audio is ever written, so a cut epoch can never reach the ring again.
    """

    def __init__(
        self, playback: SpscRing, controls: deque[Control], to_device: Callable[[Audio], Audio] | None = None
    ) -> None:
        """`to_device` converts speech to the device's rate when that is not Spine's (see rate.py)."""
        self._to_device = to_device
        self._ring = playback
        self._controls = controls
        self._epoch = NO_EPOCH
        self._pending: deque[Audio] = deque()
        self._offset = 0
        self._finish_pending = False

    def open(self, epoch: int) -> None:
        self._epoch, self._pending, self._offset, self._finish_pending = epoch, deque(), 0, False
        self._controls.append(Control("open", epoch, self._ring.written))

    def queue(self, epoch: int, audio: Audio) -> None:
        if epoch == self._epoch and len(audio):
            self._pending.append(self._to_device(audio) if self._to_device is not None else audio)
            self.pump()

    def finish(self, epoch: int) -> None:
        if epoch == self._epoch:
            self._finish_pending = True
            self.pump()

    def cut(self, epoch: int) -> None:
        if epoch == self._epoch:
            self._pending.clear()
            self._finish_pending = False
            self._epoch = NO_EPOCH
        self._controls.append(Control("cut", epoch, self._ring.written))

    def pause(self, epoch: int) -> None:
        self._controls.append(Control("pause", epoch))

    def resume(self, epoch: int) -> None:
        self._controls.append(Control("resume", epoch))

    def pump(self) -> None:
        """Write as much pending audio as the ring takes; announce the end once all of it is in."""
        while self._pending:
            head = self._pending[0]
            wrote = self._ring.write(head[self._offset :])
            self._offset += wrote
            if self._offset < len(head):
                return
            self._pending.popleft()
            self._offset = 0
        if self._finish_pending:
            self._finish_pending = False
            self._controls.append(Control("finish", self._epoch, self._ring.written))
