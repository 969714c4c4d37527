"""The playback gate: the only path from synthesised audio to the speaker.

Who does what:
* The FSM thread calls `open`, `queue`, `finish` and `cut`. These only append an operation to `_ops` (a deque:
  append and popleft are atomic in CPython), so the FSM never touches the audio side's state.
* The audio side (the sound card callback, real or simulated) calls `pull(n)` once per period. It applies the
  pending operations first, then fills the frame. It never waits and never allocates beyond the frame.
* Reports (`PlaybackDrained`, `PlaybackStopped`) go out through `report`, a non-blocking post to the inbox.

Rules that hold the invariants:
* One epoch plays at a time. Audio queued under any other epoch than the open one is dropped on arrival: a
  cut epoch can never sound again (invariant 4).
* A cut fades the next `fade_samples` of the epoch out linearly (no click) and drops the rest, so at most one
  period of the epoch reaches the device after the cut (invariant 3). `PlaybackStopped` carries the exact
  number of the epoch's samples handed to the device, fade included (invariant 5).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from device.core.events import Event, PlaybackDrained, PlaybackStopped

Audio = npt.NDArray[np.int16]
NO_EPOCH = 0


@dataclass
class _Epoch:
    epoch: int
    chunks: deque[Audio] = field(default_factory=deque)
    offset: int = 0  # samples of chunks[0] already played
    played_samples: int = 0
    finished: bool = False  # the FSM said nothing more will be queued
    fade_left: int = -1  # samples of fade still to play after a cut; -1 = not cut

    def take(self, n: int) -> Audio:
        """Up to n queued samples, in order, removed from the queue."""
        parts: list[Audio] = []
        while n > 0 and self.chunks:
            head = self.chunks[0]
            part = head[self.offset : self.offset + n]
            parts.append(part)
            n -= len(part)
            self.offset += len(part)
            if self.offset >= len(head):
                self.chunks.popleft()
                self.offset = 0
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)


@dataclass(frozen=True)
class Frame:
    """One period of speaker output and, per sample, the epoch it came from (0 for silence)."""

    audio: Audio
    epochs: npt.NDArray[np.int32]


class PlaybackGate:
    def __init__(self, fade_samples: int, report: Callable[[Event], None]) -> None:
        self._fade_samples = fade_samples
        self._report = report
        self._ops: deque[tuple[str, int, Audio | None]] = deque()
        self._playing: _Epoch | None = None
        self._fading: deque[_Epoch] = deque()  # cut epochs still fading out, oldest first
        self._ended_played: dict[int, int] = {}  # drained or stopped epochs: their final played count
        self.underrun_samples = 0

    # ---- FSM side
    def open(self, epoch: int) -> None:
        self._ops.append(("open", epoch, None))

    def queue(self, epoch: int, audio: Audio) -> None:
        self._ops.append(("queue", epoch, audio))

    def finish(self, epoch: int) -> None:
        self._ops.append(("finish", epoch, None))

    def cut(self, epoch: int) -> None:
        self._ops.append(("cut", epoch, None))

    # ---- audio side
    def pull(self, n: int) -> Frame:
        self._apply_ops()
        audio = np.zeros(n, np.int16)
        epochs = np.zeros(n, np.int32)
        filled = 0
        while self._fading and filled < n:
            filled = self._play_fade(audio, epochs, filled)
        self._play_epoch(audio, epochs, filled)
        return Frame(audio, epochs)

    def busy(self) -> bool:
        return self._playing is not None or bool(self._fading)

    def _apply_ops(self) -> None:
        while self._ops:
            op, epoch, audio = self._ops.popleft()
            if op == "open":
                if self._playing is not None:  # an unfinished epoch replaced without a cut: stop it now
                    self._end(self._playing, stopped=True)
                self._playing = _Epoch(epoch)
            elif self._playing is None or self._playing.epoch != epoch:
                if op == "cut" and epoch in self._ended_played:  # it ended before the cut took effect
                    self._report(PlaybackStopped(epoch, self._ended_played[epoch]))
                continue  # audio or orders for an epoch that is not playing: dropped (invariant 4)
            elif op == "queue" and audio is not None and len(audio):
                self._playing.chunks.append(audio)
            elif op == "finish":
                self._playing.finished = True
            elif op == "cut":
                cut, self._playing = self._playing, None
                if cut.played_samples == 0:  # nothing of it sounded yet: no fade needed, it simply never plays
                    self._end(cut, stopped=True)
                else:
                    cut.fade_left = self._fade_samples
                    self._fading.append(cut)

    def _play_fade(self, audio: Audio, epochs: npt.NDArray[np.int32], at: int) -> int:
        fading = self._fading[0]
        n = min(fading.fade_left, len(audio) - at)
        part = fading.take(n)
        done = self._fade_samples - fading.fade_left
        gain = 1.0 - (np.arange(done, done + len(part)) + 1) / self._fade_samples
        audio[at : at + len(part)] = (part * gain).astype(np.int16)
        epochs[at : at + len(part)] = fading.epoch
        fading.played_samples += len(part)
        fading.fade_left -= n
        if fading.fade_left <= 0 or len(part) < n:
            self._end(fading, stopped=True)
            self._fading.popleft()
        return at + len(part)

    def _play_epoch(self, audio: Audio, epochs: npt.NDArray[np.int32], at: int) -> int:
        playing = self._playing
        if playing is None or at >= len(audio):
            return at
        part = playing.take(len(audio) - at)
        audio[at : at + len(part)] = part
        epochs[at : at + len(part)] = playing.epoch
        playing.played_samples += len(part)
        at += len(part)
        if at < len(audio):
            if playing.finished:
                self._end(playing, stopped=False)
                self._playing = None
            else:
                self.underrun_samples += len(audio) - at
        return at

    def _end(self, epoch: _Epoch, stopped: bool) -> None:
        self._ended_played[epoch.epoch] = epoch.played_samples
        event: Event = (
            PlaybackStopped(epoch.epoch, epoch.played_samples)
            if stopped
            else PlaybackDrained(epoch.epoch, epoch.played_samples)
        )
        self._report(event)
