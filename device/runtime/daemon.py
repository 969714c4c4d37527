"""The daemon's parts wired together around one inbox: the same for `spine run` and `spine demo`.

Only the audio side differs: a real sound card (device/audio/stream.py) or the simulated room's card. Both
hand the daemon mic periods with the samples played in the same period, and take playback through a
`Playback` (the executor's open/queue/finish/cut).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from device.config import Config, core_config, samples
from device.core.events import Event, JobKind, JobLeaked, RemoteLinkChanged, Started, StopRequested
from device.core.memory import Message
from device.core.states import initial
from device.engines.aec import EchoCanceller
from device.engines.load import Engines
from device.errors import UserError
from device.rates import SPINE_RATE_HZ as RATE_HZ
from device.reply.backend import make_responder, realtime_config
from device.reply.local import respond
from device.reply.realtime_link import RealtimeLink
from device.runtime.capture import CaptureHistory
from device.runtime.eventlog import EventLog
from device.runtime.executor import Executor, MicState, Playback, ReplyJobs, Runner
from device.runtime.hearing import hearing_of
from device.runtime.job_threads import ThreadRunner
from device.runtime.jobs import Job, VirtualRunner
from device.runtime.loop import Inbox, Observer, SpineLoop
from device.runtime.realtime_work import RealtimeMic, realtime_reply_job
from device.runtime.timers import Timers
from device.runtime.work import Costs

ClockKind = Literal["virtual", "wall"]
CAPTURE_HISTORY_S = 60


def costs_of(config: Config) -> Costs:
    sim = config.sim
    return Costs(
        asr_fixed_samples=samples(sim.asr_fixed_ms / 1000),
        asr_rtf=sim.asr_rtf,
        tts_fixed_samples=samples(sim.tts_fixed_ms / 1000),
        tts_rtf=sim.tts_rtf,
        first_token_samples=samples(sim.reply_first_token_ms / 1000),
        token_samples=samples(config.reply.token_interval_ms / 1000),
    )


class Daemon:
    def __init__(
        self,
        config: Config,
        engines: Engines,
        log: Path | EventLog,
        clock: ClockKind,
        playback: Callable[[Callable[[Event], None]], Playback],
        reopen_audio: Callable[[int], None] = lambda _attempt: None,
        observers: Iterable[Observer] = (),
        played_samples_of: Callable[[int], int] | None = None,
    ) -> None:
        """`log` is a path, or a log already open (`spine run` opens it before loading the models). `playback`
        builds the playback side, given where it posts its reports. `observers` see every step
        (device/runtime/loop.py says what they may do). `played_samples_of(epoch)`: what the card played of an
        epoch so far, in Spine samples (the playback's own `played_samples_of` when it has one)."""
        self.config = config
        self.period = config.period_samples
        self._hearing_fails_at_s = math.inf  # test-only (`fail_hearing_at`)
        self.inbox = Inbox()
        self.playback = playback(self.inbox.post)
        self.timers = Timers()
        self.capture = CaptureHistory(CAPTURE_HISTORY_S * RATE_HZ)
        # The canceller is made here, on the thread that will use it (docs/architecture.md, threads: no fork,
        # one instance for good).
        self.aec = EchoCanceller(converge_erle_db=config.aec.converge_erle_db) if config.aec.enabled else None
        self.hearing = hearing_of(engines, config, self.aec, self.period)
        self.last_cleaned: npt.NDArray[np.int16] = np.zeros(0, np.int16)
        self.leaked_threads = False
        """Set by `finish`: a worker thread was still running a job when the run ended (see `ThreadRunner.stop`)."""
        self.runner: VirtualRunner | ThreadRunner = (
            VirtualRunner(samples(config.sim.cancel_ack_ms / 1000))
            if clock == "virtual"
            else ThreadRunner(self.inbox.post, RATE_HZ, on_leak=self._post_leak)
        )
        self.log = log if isinstance(log, EventLog) else EventLog(log, core_config(config))
        runner: Runner = self.runner
        played = played_samples_of or getattr(self.playback, "played_samples_of", None) or (lambda _epoch: 0)
        self.realtime: RealtimeLink | None = None
        self.realtime_mic: RealtimeMic | None = None
        reply_jobs = None
        if config.reply.backend == "realtime":
            if clock != "wall":
                raise UserError('[reply] backend = "realtime" talks to a server in real time: use the wall clock')
            self.realtime = RealtimeLink(realtime_config(config.reply), self._post_link)
            self.realtime_mic = RealtimeMic(self.realtime)
            reply_jobs = self._realtime_jobs(config, played)
        self.executor = Executor(
            runner=runner,
            gate=self.playback,
            timers=self.timers,
            capture=self.capture,
            asr=engines.asr,
            tts=engines.tts,
            respond=make_responder(config.reply),
            local_time=self._local_time(clock),
            costs=costs_of(config),
            reopen_audio=reopen_audio,
            earcon_level_dbfs=config.earcons.level_dbfs,
            played_samples_of=played,
            reply_jobs=reply_jobs,
        )
        if self.realtime is not None:
            self.realtime.start()
        self.loop = SpineLoop(initial(core_config(config)), self.log, self.executor, observers)
        self.inbox.post(Started())  # the first event of every run: the start-up sound plays on it

    def _post_link(self, up: bool, cause: str, detail: str) -> None:
        self.inbox.post(RemoteLinkChanged(up, cause, detail))

    def _realtime_jobs(self, config: Config, played: Callable[[int], int]) -> ReplyJobs:
        link, reply = self.realtime, config.reply
        assert link is not None
        fade = samples(config.audio.fade_ms / 1000)
        costs = costs_of(config)

        def job(turn: int, prompt: str, history: tuple[Message, ...], now: datetime) -> Job:
            fallback = (lambda: respond(prompt, history, now)) if reply.realtime_fallback == "local" else None
            played_of_turn = lambda: self.executor.played_of_turn(turn)  # noqa: E731
            return realtime_reply_job(
                turn, link, self.executor.store, played_of_turn, fade, fallback, costs, reply.reply_timeout_s,
                prompt=prompt,
            )  # fmt: skip

        return job

    def _post_leak(self, turn: int, job: JobKind, waited_ms: float) -> None:
        self.inbox.post(JobLeaked(turn, job, round(waited_ms, 1)))

    def _local_time(self, clock: ClockKind) -> Callable[[int], datetime]:
        if clock == "wall":
            return lambda _now: datetime.now()
        start = datetime.fromisoformat(self.config.sim.start_time)
        return lambda now: start + timedelta(seconds=now / RATE_HZ)

    def hear(self, mic: npt.NDArray[np.int16], start: int, played: npt.NDArray[np.int16]) -> list[Event]:
        """One period of mic audio (and what was played meanwhile) -> the facts hearing found in it.

        The echo-cancelled mic is what is heard and what is kept for speech to text."""
        if time.monotonic() >= self._hearing_fails_at_s:
            raise RuntimeError("fault injected (SPINE_FAULT): a hearing model raised")
        if self.executor.mic is MicState.MUTED:  # neither heard nor kept (silence keeps the indices aligned)
            self.capture.append(np.zeros_like(mic))
            self.last_cleaned = np.zeros_like(mic)
            return []
        opened = self.executor.opened
        speech = opened is None or opened.earcon is None  # a chime, the start-up sound too, is not speech
        # The start-up sound is not treated as a chime otherwise: its echo is what the canceller and the echo
        # model first learn the room from.
        if opened is not None and opened.earcon is not None and opened.earcon != "startup":
            # A chime is not the assistant's speech: hearing and the canceller get silence in its place.
            # Measured at 0 dB coupling before convergence, AEC3 fed the chime suppressed the near end and took
            # "What" from a user who talked on over it ("Time is it?"), and it adapted differently, so one
            # echo-only scene of the suite (+6 dB, 300 ms) got a false pause. The chime stays in the mic: it
            # does not look like speech to the voice model or to speech to text (`device/engines/earcon.py`).
            # Also once its end is reported, until the next epoch opens: the speaker plays silence then anyway,
            # and on a card the report can be stepped before the period holding the chime's last samples is
            # heard (the callback reports before it writes that period to the rings; resampling delays it more).
            played = np.zeros_like(played)
        cleaned, facts = self.hearing.clean(mic, played)
        self.capture.append(cleaned)
        self.last_cleaned = cleaned
        if self.realtime_mic is not None:  # the utterance the spine hears goes to the realtime call as it is heard
            self.realtime_mic.heard(self.loop.state, cleaned, start, self.capture)
        return facts + self.hearing.hear(cleaned, start, played, raw=mic, speech=speech)

    def fail_hearing_at(self, at_s: float) -> None:
        """Test-only fault (SPINE_FAULT, device/service/faults.py): from `time.monotonic()` `at_s` on, hearing a
        period raises, as a model's exception would."""
        self._hearing_fails_at_s = at_s

    def stop(self, now: int, reason: str) -> None:
        self.request_stop(now, reason)
        self.finish(now)

    def request_stop(self, now: int, reason: str) -> None:
        """Steps the stop first of all: from here on, whatever else hangs, the log says the run was stopped."""
        self.loop.handle(StopRequested(reason), now)

    def finish(self, now: int) -> None:
        """After the stop was stepped: cancel every job and give them `STOP_JOIN_S` to return; a job still running
        then is abandoned and logged as `JobLeaked` (invariant 6), as is a leak the watchdog posted that the loop
        did not step. Then the log is closed. `leaked_threads` says whether a worker thread is left running."""
        leaks: list[Event] = [event for event in self.inbox.drain() if isinstance(event, JobLeaked)]
        if isinstance(self.runner, ThreadRunner):
            stuck = self.runner.stop()
            self.leaked_threads = self.runner.leaks > 0  # stuck now, or abandoned earlier and maybe still stuck
            leaks += [JobLeaked(leak.turn, leak.kind, leak.waited_ms) for leak in stuck]
        if self.realtime is not None:
            self.realtime.close()
        for leak in leaks:
            self.loop.handle(leak, now)
        self.log.close()
