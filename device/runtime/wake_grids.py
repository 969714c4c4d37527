"""The wake word scored on two frame grids half a frame apart, the second only after a near miss on the first.

openWakeWord scores 80 ms frames, and its score depends on where the frame grid falls in the word: measured over
16 grid positions (80-sample steps), "Hey Jarvis. Tell me a story." (espeak-ng en-us) scored 0.47 at one position
and 0.94-1.0 at the others, so a user who said it at that moment went unheard (threshold 0.5; CI saw it as a
missed second turn). Over 8 espeak-ng voices x 3 phrases x 2 levels x 16 positions in faint noise, the main grid
alone missed 111 of 768 cases and with this second grid 93: a miss at an unlucky position becomes a detection, a
phrase the model does not know stays missed.

The second grid costs what the first does (2.6 ms per frame here, the feature models), so it runs only for a near
miss: once the main grid's score has risen to `MAYBE_SCORE` or more and fallen back under it without reaching the
threshold (a real detection's score rises through 0.1 a frame or two before it crosses, sometimes dipping on the
way, and needs no second opinion: `QUIET_FRAMES`), and then for `HOLD_SAMPLES` after the main grid's last such
frame. Started late, it first catches up on the last `CATCH_UP_FRAMES` of the same audio (kept here), which is as
much as openWakeWord's windows reach back (76 mel frames, then 16 embeddings of 80 ms): from then on it scores
exactly what it would have had it run all along. The catch-up is a burst (30 frames, ~80 ms here), and a rescued
wake word is found once the main grid's score has stayed under 0.1 for `QUIET_FRAMES` after its peak. Its twin
shares the models' sessions (`WakeWordDetector.twin`), so memory does not grow. Only catch-up frames that end at
most a frame before the main grid's peak are reported: an older frame is context, and what it would have found is a
wake word the main grid already had its chance at.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import numpy as np
import numpy.typing as npt

from device.runtime.framer import Framer

Audio = npt.NDArray[np.int16]

MAYBE_SCORE = 0.1
"""A main-grid score this high means a wake word may be under way. Unrelated speech stayed below it in the tests;
faint noise reached 0.13 about 1.2 s after a reset (the seeded start-up features giving way to real audio)."""
HOLD_SAMPLES = 16000
"""The second grid keeps running this long after the main grid's last score of at least `MAYBE_SCORE`."""
QUIET_FRAMES = 3
"""A near miss is over once the main grid has scored under `MAYBE_SCORE` this many frames in a row (240 ms): inside a
wake word that is then detected the score can dip under it for a frame ("Hey Jarvis, what time is it?", en-us+f4:
0.36, 0.28, 0.05, then 0.76)."""
CATCH_UP_FRAMES = 30
"""Frames of past audio the second grid scores when it starts: 2.4 s, so that the frames around the near miss's
peak, `QUIET_FRAMES` + 1 back, have all that openWakeWord's windows span behind them (10 frames to fill the
76-frame mel window, then 16 embeddings: 26)."""


class WakeScorer(Protocol):
    FRAME_SAMPLES: int

    def score(self, frame: Audio) -> float: ...
    def reset(self) -> None: ...


class WakeGrids:
    """`push(audio, start)` -> (frame end sample, score) of every frame scored, the main grid's first."""

    def __init__(self, main: WakeScorer, offset: WakeScorer | None, threshold: float) -> None:
        """`offset`: a twin of `main` for the second grid (None: one grid). `threshold`: the detection threshold;
        a main-grid frame at or above it needs no second opinion."""
        self._main, self._offset, self._threshold = main, offset, threshold
        self._frame = main.FRAME_SAMPLES
        self._main_frames = Framer(self._frame)
        self._offset_frames: Framer | None = None  # None: the second grid is idle
        self._offset_until = -1
        self._history: deque[tuple[int, Audio]] = deque()  # (start sample, audio), oldest first
        self._history_samples = 0
        self._origin: int | None = None  # where the main grid's first frame started
        self._peak: tuple[int, float] | None = None  # (end, score) of the main grid's best maybe, if pending
        self._maybe_until = -1  # the end of the main grid's last frame scoring `MAYBE_SCORE` or more
        self.offset_starts = 0
        """How many times the second grid started (a catch-up each)."""

    def push(self, audio: Audio, start_sample: int) -> list[tuple[int, float]]:
        if self._origin is None:
            self._origin = start_sample
        main_frames = self._main_frames.push(audio, start_sample)
        offset = self._offset
        if offset is None:
            return [(start + len(frame), self._main.score(frame)) for start, frame in main_frames]
        end = start_sample + len(audio)
        self._remember(audio, start_sample)
        scored: list[tuple[int, float]] = []
        caught_up = False
        for frame_start, frame in main_frames:
            frame_end = frame_start + len(frame)
            score = self._main.score(frame)
            scored.append((frame_end, score))
            if score >= self._threshold:
                self._peak = None  # the main grid found it
                continue
            if score >= MAYBE_SCORE:
                self._offset_until = frame_end + HOLD_SAMPLES
            if self._offset_frames is not None:
                continue  # the second grid runs already
            peak = self._peak
            if score >= MAYBE_SCORE:
                if peak is None or score >= peak[1]:
                    self._peak = (frame_end, score)
                self._maybe_until = frame_end
            elif peak is not None and frame_end - self._maybe_until >= QUIET_FRAMES * self._frame:
                # Under `MAYBE_SCORE` for a while without crossing: the main grid had its chance.
                self._peak = None
                scored += self._catch_up(offset, end, peak[0])  # up to `end`: this audio included
                caught_up = True
        if self._offset_frames is not None:
            if not caught_up:
                frames = self._offset_frames.push(audio, start_sample)
                scored += [(start + len(frame), offset.score(frame)) for start, frame in frames]
            if end > self._offset_until:
                self._offset_frames = None
        return scored

    def reset(self) -> None:
        """After a detection: both grids forget what they heard (the next catch-up starts after it)."""
        self._main.reset()  # its grid stays where it is, as a reset detector's did
        self._peak = None
        self._offset_frames = None
        self._offset_until = -1
        self._history.clear()
        self._history_samples = 0

    def _remember(self, audio: Audio, start_sample: int) -> None:
        self._history.append((start_sample, audio.copy()))
        self._history_samples += len(audio)
        keep = (CATCH_UP_FRAMES + 1) * self._frame
        while self._history_samples - len(self._history[0][1]) >= keep:
            self._history_samples -= len(self._history.popleft()[1])

    def _catch_up(self, offset: WakeScorer, end: int, trigger_end: int) -> list[tuple[int, float]]:
        """Start the second grid on the remembered audio up to `end`; report the frames that end at most a frame
        before the triggering one (`trigger_end`)."""
        self.offset_starts += 1
        offset.reset()
        history_start = self._history[0][0]
        earliest = max(history_start, end - CATCH_UP_FRAMES * self._frame)
        assert self._origin is not None  # a main frame was pushed
        first = earliest + (self._origin + self._frame // 2 - earliest) % self._frame  # half a frame off the main
        audio = np.concatenate([period for _, period in self._history])[first - history_start :]
        self._offset_frames = Framer(self._frame)
        reported: list[tuple[int, float]] = []
        for frame_start, frame in self._offset_frames.push(audio, first):
            frame_end = frame_start + len(frame)
            score = offset.score(frame)
            if frame_end >= trigger_end - self._frame:
                reported.append((frame_end, score))
        return reported
