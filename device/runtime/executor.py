"""The executor: carries out the spine's commands. It maps each command to one action and decides nothing.

| command        | action                                                          |
|----------------|-----------------------------------------------------------------|
| StartTimer     | arm the timer (replacing one with the same key)                 |
| CancelTimer    | disarm it                                                       |
| StartAsr       | run speech to text on the captured mic slice                    |
| StartReply     | run the reply backend                                           |
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
| SetMicrophone  | hear the mic, or drop it unheard and unkept (muted)             |
| CommitHeard    | nothing here: the log holds it; memory lives in the core        |
| VoiceBargeIn   | nothing here: the log holds it (the core ignores voice itself)  |
| NoteIgnored    | nothing here: the log holds it                                  |
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

from device.core import commands as cmd
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
        set_microphone: Callable[[bool], None] = lambda _listening: None,
        earcon_level_dbfs: float = DEFAULT_LEVEL_DBFS,
    ) -> None:
        self._earcon_level_dbfs = earcon_level_dbfs
        self._earcons: dict[str, npt.NDArray[np.int16]] = {}
        self.playing_earcon = False
        """The open epoch is a chime, not the assistant's speech (for hearing). The start-up sound is not counted
        as one: its echo is what the canceller and the echo model first learn the room from."""
        self._reopen_audio, self._set_microphone = reopen_audio, set_microphone
        self._runner, self._gate, self._timers, self._capture = runner, gate, timers, capture
        self._asr, self._tts, self._respond, self._local_time, self._costs = asr, tts, respond, local_time, costs
        self.store = AudioStore()

    def execute(self, commands: tuple[cmd.Command, ...], now: int) -> None:
        for command in commands:
            self._one(command, now)

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
                job = reply_job(turn, prompt, history, self._respond, self._local_time(now), self._costs)
                self._runner.start(job, now)
            case cmd.StartTts(turn, seq, text):
                self._runner.start(tts_job(turn, seq, text, self._tts, self.store, self._costs), now)
            case cmd.OpenPlayback(epoch, _turn):
                self.playing_earcon = False
                self._gate.open(epoch)
            case cmd.PlayEarcon(epoch, kind):
                if kind not in self._earcons:
                    self._earcons[kind] = earcon(kind, level_dbfs=self._earcon_level_dbfs)
                self.playing_earcon = kind != "startup"
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
                self._set_microphone(listening)
            case cmd.CommitHeard() | cmd.VoiceBargeIn() | cmd.NoteIgnored():
                pass
