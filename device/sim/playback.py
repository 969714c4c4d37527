"""The playback gate for single-threaded use (the simulated card, tests): feeder and callback wired together.

It is the real audio side, not a model of it: `PlaybackFeeder` (the FSM side) writes the open epoch into a
real SPSC ring and `DuplexCallback` (the callback side) plays it through the gate, exactly as with a sound
card. `pull(n)` is one callback period; it also tops the ring up first, as the FSM loop does between
periods on a device. See device/audio/duplex.py for the rules that hold the invariants.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from device.audio.duplex import DuplexCallback, PlaybackFeeder
from device.core.events import Event

Audio = npt.NDArray[np.int16]
RING_SAMPLES = 1 << 17  # 8.2 s at 16 kHz: seconds of headroom; the feeder holds the rest of a long reply


@dataclass(frozen=True)
class Frame:
    """One period of speaker output and, per sample, the epoch it came from (0 for silence)."""

    audio: Audio
    epochs: npt.NDArray[np.int32]


class PlaybackGate:
    def __init__(self, fade_samples: int, report: Callable[[Event], None], period_samples: int = 160) -> None:
        self._report = report
        self.callback = DuplexCallback.with_rings(RING_SAMPLES, fade_samples, period_samples)
        self.feeder = PlaybackFeeder(self.callback.playback, self.callback.controls)
        self.pump_on_pull = True
        """Single-threaded use tops the ring up in `pull`. When `pull` runs on another thread (the wall-clock
        card), the ring has one writer only if the FSM thread pumps instead: set False and call `pump()`."""

    # ---- FSM side
    def open(self, epoch: int) -> None:
        self.feeder.open(epoch)

    def queue(self, epoch: int, audio: Audio) -> None:
        self.feeder.queue(epoch, audio)

    def finish(self, epoch: int) -> None:
        self.feeder.finish(epoch)

    def cut(self, epoch: int) -> None:
        self.feeder.cut(epoch)

    def pause(self, epoch: int) -> None:
        self.feeder.pause(epoch)

    def resume(self, epoch: int) -> None:
        self.feeder.resume(epoch)

    # ---- one period of the audio side
    def pump(self) -> None:
        self.feeder.pump()

    def pull(self, n: int) -> Frame:
        if self.pump_on_pull:
            self.feeder.pump()
        out = np.zeros(n, np.int16)
        self.callback.play(out)
        while self.callback.reports:
            self._report(self.callback.reports.popleft())
        return Frame(out, self.callback.epoch_tags[:n].copy())

    def busy(self) -> bool:
        return self.callback.busy()

    def played_samples_of(self, epoch: int) -> int:
        return self.callback.played_samples_of(epoch)

    @property
    def underrun_samples(self) -> int:
        return self.callback.underrun_samples
