"""The executor: carries out the spine's commands. It maps each command to one action and decides nothing.

| command        | action                                                          |
|----------------|-----------------------------------------------------------------|
| StartTimer     | arm the timer (replacing one with the same key)                 |
| CancelTimer    | disarm it                                                       |
| StartAsr       | run speech to text on the captured mic slice                    |
| StartReply     | run the reply backend (its own job for the realtime backend)    |
| StartTts       | synthesise one sentence                                         |
| OpenPlayback   | open the epoch at the playback gate                             |
| QueuePlayback  | move the synthesised audio (turn, seq) into the open epoch      |
| FinishPlayback | tell the gate nothing more comes for the epoch                  |
| CutPlayback    | fade the epoch out and drop the rest                            |
| PausePlayback  | fade the epoch out and hold its place                           |
| ResumePlayback | fade it back in from exactly where it paused                    |
| PlayEarcon     | open the earcon's epoch, queue the chime, finish it             |
| CancelTurn     | cancel every job of the turn and drop its unplayed audio        |
| ReopenAudio    | ask the audio side to reopen the sound card                     |
| SetMicrophone  | the mic's state: open (heard, kept) or muted (dropped unheard)  |
| CommitHeard    | nothing here: the log holds it; memory lives in the core        |
| VoiceBargeIn   | nothing here: the log holds it (the core ignores voice itself)  |
| NoteIgnored    | nothing here: the log holds it                                  |

Two states live here because only the executor knows them: the microphone's (`mic`, set by `SetMicrophone`)
and the epoch it last opened at the gate (`opened`: which, whether a chime, whether its end was reported),
from which `earcon` says which chime plays now. Hearing reads both. A command type added to the core without
a case below fails mypy (`assert_never`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import Protocol, assert_never

import numpy as np
import numpy.typing as npt

from device.core import commands as cmd
from device.core.memory import Message
from device.engines.earcon import DEFAULT_LEVEL_DBFS, earcon
from device.runtime.capture import CaptureHistory
from device.runtime.jobs import Job
from device.runtime.timers import Timers
from device.runtime.work import AudioStore, Costs, Responder, Synthesiser, Transcriber, asr_job, reply_job, tts_job


class Playback(Protocol):
    """The FSM side of playback (PlaybackFeeder on a device, PlaybackGate in the simulated room)."""

    def open(self, epoch: int) -> None: ...
    def queue(self, epoch: int, audio: npt.NDArray[np.int16]) -> None: ...
    def finish(self, epoch: int) -> None: ...
    def cut(self, epoch: int) -> None: ...
    def pause(self, epoch: int) -> None: ...
    def resume(self, epoch: int) -> None: ...


class MicState(Enum):
    OPEN = "open"
    """Heard by hearing and kept for speech to text."""
    MUTED = "muted"
    """Neither heard nor kept (privacy): silence takes its place, so sample indices stay aligned."""


@dataclass(frozen=True)
class PlayingEarcon:
    """The chime the gate plays: its epoch and kind (wake, timeout, mute, unmute, startup)."""

    epoch: int
    kind: str


@dataclass(frozen=True)
class OpenedEpoch:
    """The epoch the executor last opened at the gate (only one plays at a time: an open replaces the last)."""

    epoch: int
    earcon: str | None
    """The chime's kind if the epoch is a chime; None for the assistant's speech."""
    ended: bool = False
    """The gate reported it drained or stopped: nothing of it plays any more."""


ReplyJobs = Callable[[int, str, tuple[Message, ...], datetime], Job]
"""(turn, prompt, history, local time) -> the turn's reply job, for a backend that runs its own (realtime)."""


class Runner(Protocol):
    def start(self, job: Job, now: int) -> None: ...
    def cancel_turn(self, turn: int, now: int) -> None: ...


class Executor:
    def __init__(
        self,
        *,
        runner: Runner,
        gate: Playback,
        timers: Timers,
        capture: CaptureHistory,
        asr: Transcriber,
        tts: Synthesiser,
        respond: Responder,
        local_time: Callable[[int], datetime],
        costs: Costs,
        reopen_audio: Callable[[int], None] = lambda _attempt: None,
        earcon_level_dbfs: float = DEFAULT_LEVEL_DBFS,
        played_samples_of: Callable[[int], int] = lambda _epoch: 0,
        reply_jobs: ReplyJobs | None = None,
    ) -> None:
        """`played_samples_of(epoch)`: what the gate has played of an epoch so far (Spine samples). `reply_jobs`:
        how a backend that runs its own job (realtime) answers `StartReply`; None: `reply_job` with `respond`."""
        self._played_samples_of = played_samples_of
        self._reply_jobs = reply_jobs
        self._epoch_of_turn: dict[int, int] = {}
        self._earcon_level_dbfs = earcon_level_dbfs
        self._earcons: dict[str, npt.NDArray[np.int16]] = {}
        self.mic = MicState.OPEN
        self.opened: OpenedEpoch | None = None
        self._reopen_audio = reopen_audio
        self._runner, self._gate, self._timers, self._capture = runner, gate, timers, capture
        self._asr, self._tts, self._respond, self._local_time, self._costs = asr, tts, respond, local_time, costs
        self.store = AudioStore()

    def execute(self, commands: tuple[cmd.Command, ...], now: int) -> None:
        for command in commands:
            self._one(command, now)

    @property
    def earcon(self) -> PlayingEarcon | None:
        """The chime the gate plays now, if any."""
        opened = self.opened
        if opened is None or opened.earcon is None or opened.ended:
            return None
        return PlayingEarcon(opened.epoch, opened.earcon)

    def played_of_turn(self, turn: int) -> int:
        """Samples the gate has played so far of the epoch the turn's reply opened (0 before it opened)."""
        epoch = self._epoch_of_turn.get(turn)
        return 0 if epoch is None else self._played_samples_of(epoch)

    def playback_ended(self, epoch: int) -> None:
        """The gate reported `epoch` drained or stopped. (A report of an older epoch changes nothing: the gate
        ended it when the last one opened.)"""
        if self.opened is not None and self.opened.epoch == epoch:
            self.opened = replace(self.opened, ended=True)

    def _one(self, command: cmd.Command, now: int) -> None:
        match command:
            case cmd.StartTimer(kind, ref, due):
                self._timers.arm(kind, ref, due)
            case cmd.CancelTimer(kind, ref):
                self._timers.cancel(kind, ref)
            case cmd.StartAsr(turn, start, end):
                audio = self._capture.slice(start, end)
                self._runner.start(asr_job(turn, audio, end, self._asr, self._costs), now)
            case cmd.StartReply(turn, prompt, history):
                if self._reply_jobs is not None:
                    job = self._reply_jobs(turn, prompt, history, self._local_time(now))
                else:
                    job = reply_job(turn, prompt, history, self._respond, self._local_time(now), self._costs)
                self._runner.start(job, now)
            case cmd.StartTts(turn, seq, text):
                self._runner.start(tts_job(turn, seq, text, self._tts, self.store, self._costs), now)
            case cmd.OpenPlayback(epoch, turn):
                self._epoch_of_turn = {turn: epoch}  # only the latest turn's epoch can still be asked about
                self.opened = OpenedEpoch(epoch, None)  # it replaces a chime still playing (the gate ends it)
                self._gate.open(epoch)
            case cmd.PlayEarcon(epoch, kind):
                if kind not in self._earcons:
                    self._earcons[kind] = earcon(kind, level_dbfs=self._earcon_level_dbfs)
                self.opened = OpenedEpoch(epoch, kind)
                self._gate.open(epoch)
                self._gate.queue(epoch, self._earcons[kind])
                self._gate.finish(epoch)
            case cmd.QueuePlayback(epoch, turn, seq):
                speech = self.store.take(turn, seq)
                if speech is not None:
                    self._gate.queue(epoch, speech)
            case cmd.FinishPlayback(epoch):
                self._gate.finish(epoch)
            case cmd.CutPlayback(epoch):
                self._gate.cut(epoch)
            case cmd.PausePlayback(epoch):
                self._gate.pause(epoch)
            case cmd.ResumePlayback(epoch):
                self._gate.resume(epoch)
            case cmd.CancelTurn(turn):
                self._runner.cancel_turn(turn, now)
                self.store.drop_turn(turn)
            case cmd.ReopenAudio(attempt):
                self._reopen_audio(attempt)
            case cmd.SetMicrophone(listening):
                self.mic = MicState.OPEN if listening else MicState.MUTED
            case cmd.CommitHeard() | cmd.VoiceBargeIn() | cmd.NoteIgnored():
                pass
            case _:
                assert_never(command)
