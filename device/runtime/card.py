"""`spine run`: the daemon on the real sound card, until SIGINT/SIGTERM.

Start-up, in this order: the signals are handled (device/runtime/signals.py, before anything here is even
imported), the event log is opened, the models load (a stop requested meanwhile ends the start-up between two
models, and the log says so), the card opens, the loop runs. A stop steps `StopRequested` first, then closes the
card and ends the jobs; the process is over within `STOP_BOUND_S` of the loop seeing the stop.

The FSM thread (this one) runs the one loop (device/runtime/fsm_thread.py) with the card as its audio side: it
moves audio from the capture and reference rings into hearing, tops up the playback ring, steps the callback's
reports, and watches the stream's health. A stream that stops or stalls becomes `AudioDeviceLost`; the spine
answers with `ReopenAudio` after its back-off, and the result comes back as `AudioDeviceRestored` or another
`AudioDeviceLost`.

As a service (device/service/): once the stream runs (or could not be opened: Degraded, retrying) systemd hears
READY=1; each change of state becomes STATUS= through a loop observer; a service thread pings WATCHDOG=1 by the
watchdog's rule; the stop sends STOPPING=1 as it begins. The test-only faults of SPINE_FAULT are armed at READY.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from device.audio.duplex import DuplexCallback, PlaybackFeeder
from device.audio.rate import RateBridge
from device.audio.stream import (
    LOST_MIC_PER_STEP_NS,
    NEVER_NS,
    QUIET_BEFORE_STEP_DOWN_NS,
    UNDERFLOWS_PER_STEP,
    DeviceChoice,
    DuplexStream,
    RealtimeOutcome,
)
from device.config import Config, core_config
from device.core.events import (
    AudioDeviceLost,
    AudioDeviceRestored,
    AudioLatencyLowered,
    AudioLatencyRaised,
    AudioXrun,
    Event,
    MuteChanged,
    PlaybackDrained,
    PlaybackStopped,
    StopRequested,
)
from device.core.states import Degraded, Idle, State, initial
from device.engines.load import load_engines
from device.errors import UserError
from device.rates import SPINE_RATE_HZ as RATE_HZ
from device.runtime.clock import WallClock
from device.runtime.daemon import Daemon
from device.runtime.eventlog import EventLog
from device.runtime.fsm_thread import FsmThread, Period, inbox_waits
from device.runtime.loop import Inbox, NothingStarted, Observer, SpineLoop
from device.runtime.signals import RunSignals, StopBeforeStart, StopGuard
from device.service.environment import ServiceEnvironment, read_service_environment
from device.service.journal import Level, ServiceLog
from device.service.notify import Notifier, notify_message
from device.service.realtime import describe_realtime
from device.service.service_thread import ServiceThread
from device.service.watchdog import Beat

RING_SAMPLES = 1 << 17  # 8.2 s: the FSM thread may fall behind by seconds (a model load) without losing audio
STALL_S = 1.0
HEALTH_EVERY_S = 0.2
REST_WAIT_S = 0.04
"""Between rounds while Spine is idle and nothing plays, the loop waits this long for the inbox instead of half a
period, and hears the periods that came meanwhile in one round: idle listening is most of a device's day, and
rounds every 5 ms cost 2 % of a core in loop overhead alone (measured in `spine run`, 162 rounds a second). What
comes in the inbox (a worker's result, a monitor's request) still wakes it at once; a wake word is heard up to
40 ms later, well inside its own 80 ms frames; a stop or a mute signal is seen within 40 ms."""
SERVICE_CLOSE_S = 0.5
"""The service thread's share of the stop's bound (`STOP_BOUND_S`): writing what it has queued."""

Say = Callable[[Level, str], None]


def choose_devices(config: Config) -> DeviceChoice:
    return choose_devices_and_rate(config)[0]


def choose_devices_and_rate(config: Config) -> tuple[DeviceChoice, int]:
    """The devices, and the rate to run them at: 16 kHz when both take it, else one both take (resampled)."""
    from device.audio.devices import find_device

    mic = find_device(config.audio.input_device, "input")
    speaker = find_device(config.audio.output_device, "output")
    choice = DeviceChoice(input_index=mic.index, output_index=speaker.index)
    if config.audio.device_rate_hz is not None:
        return choice, config.audio.device_rate_hz
    common = set(mic.input_rates_hz) & set(speaker.output_rates_hz)
    if RATE_HZ in common or not common:
        return choice, RATE_HZ  # not common at all: let the open fail with its own clear message
    native = speaker.native_rate_hz("output")
    return choice, native if native in common else max(common)


class CardSide:
    """The real sound card as the loop's audio side: the callback's rings, reports and stream health."""

    def __init__(
        self,
        callback: DuplexCallback,
        feeder: PlaybackFeeder,
        stream: DuplexStream,
        bridge: RateBridge,
        period_samples: int,
        mute_requests: deque[tuple[bool, str]],
        say: Say = lambda _level, _message: None,
        echo_path_moved: Callable[[int, bool], None] = lambda _at_sample, _new_latency: None,
    ) -> None:
        """`say` queues a line for the service's log (the callback's real-time priority, an injected stall);
        `echo_path_moved` hears of each xrun, with the Spine-rate sample it happened around, and of each reopen at
        a new latency (True)."""
        self._callback, self._feeder, self._stream, self._bridge = callback, feeder, stream, bridge
        self._say = say
        self._realtime_said: RealtimeOutcome | None = None
        self._stall_said = False
        self._period = period_samples
        self._device_period = period_samples * bridge.device_rate_hz // RATE_HZ
        self._mic = np.zeros(self._device_period, np.int16)
        self._played = np.zeros(self._device_period, np.int16)
        self._heard_up_to = 0  # Spine-rate sample index of the next mic period for hearing
        self._mute_requests = mute_requests  # appended by the signal handlers
        self._next_health_s = 0.0
        self._echo_path_moved = echo_path_moved
        self._underflows_seen = 0
        self._overflows_seen = 0
        self._card_facts: list[Event] = []  # xruns and latency steps, for the next `early_reports`
        self._lag_floors: list[int] = []  # capture lag floors of the health checks since the stream (re)opened
        self._underflows_at_step = 0
        self._quiet_since_ns: int | None = None  # the stream's clock at its last xrun, loss or reopen

    def periods(self) -> Iterator[Period]:
        callback, device_period = self._callback, self._device_period
        underflows, overflows = self._stream.output_underflows, self._stream.input_overflows
        if (underflows, overflows) != (self._underflows_seen, self._overflows_seen):
            self._card_facts.append(AudioXrun(underflows - self._underflows_seen, overflows - self._overflows_seen))
            self._underflows_seen, self._overflows_seen = underflows, overflows
            self._quiet_since_ns = None  # the quiet spell before a step down begins again at the next check
            self._path_moved()
        while callback.capture.available() >= device_period and callback.reference.available() >= device_period:
            callback.capture.read_into(self._mic)
            callback.reference.read_into(self._played)
            self._bridge.from_device(self._mic, self._played)
        return self._spine_periods()

    def _path_moved(self, new_latency: bool = False) -> None:
        """Tells hearing the echo path moved around the newest captured sample (when the callback saw it)."""
        backlog = self._callback.capture.available() * RATE_HZ // self._bridge.device_rate_hz
        self._echo_path_moved(self._heard_up_to + backlog, new_latency)

    def _spine_periods(self) -> Iterator[Period]:
        for mic, played in self._bridge.periods(self._period):
            yield Period(self._heard_up_to, mic, played)
            self._heard_up_to += self._period

    def early_reports(self) -> list[Event]:
        """The xruns `periods()` just saw and a latency step of the last health check: stepped before the heard
        facts, so the log shows the cause before hearing's reaction (`EchoDelayChanged`, the voice gate)."""
        facts, self._card_facts = self._card_facts, []
        return facts

    def reports(self) -> list[Event]:
        reports = self._callback.reports
        pending: list[Event] = []
        while reports:
            pending.append(_in_spine_samples(reports.popleft(), self._bridge))
        return pending

    def requests(self) -> list[Event]:
        pending: list[Event] = []
        while self._mute_requests:
            muted, source = self._mute_requests.popleft()
            pending.append(MuteChanged(muted, source))
        return pending

    def pump(self) -> None:
        self._feeder.pump()

    def health(self, state: State) -> Event | None:
        if time.monotonic() < self._next_health_s:
            return None
        self._next_health_s = time.monotonic() + HEALTH_EVERY_S
        now_ns = time.perf_counter_ns()
        self._say_what_the_callback_recorded(now_ns)
        if self._stream.resync_if_spinning(now_ns):  # PortAudio's busy loop after a late callback (see stream.py)
            self._lag_floors.clear()
        idle = isinstance(state, Idle) and not self._callback.busy()  # a reopen now cuts no sound
        problem = self._keep_up(idle) or self._stream.health(now_ns, int(STALL_S * 1e9))
        if problem is None or isinstance(state, Degraded):  # degraded: the spine already reopens with back-off
            return None
        self._stream.close()
        return AudioDeviceLost(problem)

    def _keep_up(self, idle: bool = False) -> str | None:
        """Reopens the stream one latency step up when it lost mic audio or underran (device/audio/stream.py), and
        one step back down once it kept up for `QUIET_BEFORE_STEP_DOWN_NS` while `idle`; the problem if the reopen
        failed."""
        stream = self._stream
        now_ns = stream.now_ns()
        floor = stream.take_capture_lag_floor()
        if floor != NEVER_NS:
            self._lag_floors.append(floor)
        # The first check's floor holds the start's burst (PortAudio fills the output buffer at once): skip it.
        # Consecutive checks only: a card's clock drifts from ours by up to ~100 ppm, a loss jumps.
        lost_ns = self._lag_floors[-1] - self._lag_floors[-2] if len(self._lag_floors) >= 3 else 0
        if self._quiet_since_ns is None or lost_ns >= LOST_MIC_PER_STEP_NS:  # None: `periods` saw an xrun
            self._quiet_since_ns = now_ns
        underflows = stream.output_underflows - self._underflows_at_step
        if lost_ns < LOST_MIC_PER_STEP_NS and underflows < UNDERFLOWS_PER_STEP:
            return self._step_down_when_quiet(now_ns) if idle else None
        why = f"lost {lost_ns / 1e6:.0f} ms of the microphone" if lost_ns >= LOST_MIC_PER_STEP_NS else (
            f"ran dry {underflows} times")  # fmt: skip
        self._underflows_at_step = stream.output_underflows
        self._lag_floors.clear()
        try:
            raised = stream.raise_latency()
        except UserError as error:
            return str(error)
        if raised:
            self._say("warning", f"audio: the stream {why} (a busy machine): reopened with "
                      f"{stream.output_latency_s * 1000:.0f} ms of output latency to keep up")  # fmt: skip
            self._card_facts.append(AudioLatencyRaised(round(stream.output_latency_s * 1000, 1), why))
            self._path_moved(new_latency=True)
        return None

    def _step_down_when_quiet(self, now_ns: int) -> str | None:
        """One latency step back down after a quiet spell; the problem if the reopen failed. Idle only: the reopen
        drops a few periods of the mic, which a wake word can spare and a talk-over cannot."""
        stream, quiet_since = self._stream, self._quiet_since_ns
        if stream.latency_step == 0 or quiet_since is None or now_ns - quiet_since < QUIET_BEFORE_STEP_DOWN_NS:
            return None
        try:
            stream.lower_latency()
        except UserError as error:
            return str(error)
        quiet_s = (now_ns - quiet_since) / 1e9
        self._underflows_at_step = stream.output_underflows
        self._lag_floors.clear()
        self._quiet_since_ns = now_ns
        self._say("info", f"audio: the stream kept up for {quiet_s / 60:.0f} minutes: reopened with "
                  f"{stream.output_latency_s * 1000:.0f} ms of output latency")  # fmt: skip
        self._card_facts.append(AudioLatencyLowered(round(stream.output_latency_s * 1000, 1), round(quiet_s, 1)))
        self._path_moved(new_latency=True)
        return None

    def _say_what_the_callback_recorded(self, now_ns: int) -> None:
        """The callback does no I/O: what it recorded is said from here, once."""
        realtime = self._stream.realtime
        if realtime is not None and realtime != self._realtime_said:
            self._realtime_said = realtime
            self._say(*describe_realtime(realtime))
        stalled_ns = self._stream.stalled_at_ns
        if stalled_ns and not self._stall_said:
            self._stall_said = True
            at_s = time.time() - (now_ns - stalled_ns) / 1e9
            self._say("warning", f"fault injected (SPINE_FAULT): the audio callback stopped delivering at {at_s:.3f}")

    def playout_samples(self) -> int | None:
        if not self._callback.busy():
            return None
        return self._bridge.to_spine_samples(self._callback.played_samples)

    def close(self) -> None:
        self._stream.close()


class RealTime:
    """The wall clock of `spine run`: it runs until a stop is requested; between rounds the loop waits on the inbox
    (half a period at most, so a stop is seen within a round). The round that sees the stop arms the guard."""

    one_instant = False

    def __init__(
        self,
        inbox: Inbox,
        signals: RunSignals,
        period_samples: int,
        guard: StopGuard,
        stopping: Callable[[], None] = lambda: None,
        resting: Callable[[], bool] = lambda: False,
    ) -> None:
        """`stopping` is told once, as the stop begins (STOPPING=1); `resting` says whether the loop may wait
        `REST_WAIT_S` between rounds (idle, nothing playing)."""
        self._inbox, self._signals, self._guard, self._stopping = inbox, signals, guard, stopping
        self._resting = resting
        self._clock = WallClock(RATE_HZ)
        self._wait_s = period_samples / RATE_HZ / 2
        self._freeze_at_s = float("inf")
        self._say: Say = lambda _level, _message: None

    def freeze_at(self, at_s: float, say: Say) -> None:
        """Test-only fault (SPINE_FAULT): from `time.monotonic()` `at_s` on, the loop blocks for good."""
        self._freeze_at_s, self._say = at_s, say

    def now(self) -> int:
        return self._clock.now_samples()

    def ended(self) -> bool:
        if time.monotonic() >= self._freeze_at_s:
            self._say("warning", f"fault injected (SPINE_FAULT): the FSM loop freezes at {time.time():.3f}")
            threading.Event().wait()  # for good: a deadlock does not see a stop either
        if not self._signals.stop_requested():
            return False
        self._stopping()
        self._guard.arm("the stop: stepping it, closing the sound card or ending the jobs")
        return True

    def due(self, _now: int) -> list[Event]:
        return []  # the workers post their results into the inbox

    def waits(self) -> Iterator[list[Event]]:
        return inbox_waits(self._inbox, REST_WAIT_S if self._resting() else self._wait_s)


def open_event_log(log_path: Path, config: Config) -> EventLog:
    """The run's event log, opened before anything slow so a stop at any moment is logged; a path that cannot be
    written is a one-line error."""
    if log_path.is_dir():
        raise UserError(f"--log is a directory: give a file path (e.g. {log_path / 'events.jsonl'})", str(log_path))
    try:
        return EventLog(
            log_path,
            core_config(config),
            part_bytes=round(config.log.part_mb * 1e6),
            keep_bytes=round(config.log.keep_mb * 1e6),
        )
    except OSError as error:
        raise UserError(f"cannot write the event log: {error.strerror}", str(log_path)) from None


def stop_before_start(log: EventLog, config: Config, reason: str) -> None:
    """Steps `StopRequested` from the initial state into a run's log when it was stopped before its organs exist
    (nothing started: the step commands nothing), then closes the log."""
    SpineLoop(initial(core_config(config)), log, NothingStarted()).handle(StopRequested(reason), 0)
    log.close()


def run(
    config: Config,
    log_path: Path,
    signals: RunSignals,
    observers: Iterable[Observer] = (),
    guard: StopGuard | None = None,
    service: ServiceEnvironment | None = None,
) -> int:
    """`spine run` until `signals` asks for a stop: 0 then. `signals` must already be installed (`spine run` does
    it first thing); a stop while the models load ends the start-up between two models, logged all the same.
    Once a stop has begun the process ends within `STOP_BOUND_S` (`guard`). `service` is what systemd (and a
    test's SPINE_FAULT) asked for, read from the environment when not given."""
    guard = guard or StopGuard()
    service = service or read_service_environment()
    service_log = ServiceLog(service.environ)
    notifier = Notifier(service.environ, warn=service_log.warning)
    log = open_event_log(log_path, config)
    try:
        sys.setswitchinterval(config.audio.switch_interval_ms / 1000)
        engines = load_engines(config, between=signals.raise_if_stopped)
        signals.raise_if_stopped()
    except StopBeforeStart as stopped:
        notifier.send(notify_message(("STOPPING", "1")))
        guard.arm("logging a stop during start-up")
        stop_before_start(log, config, str(stopped))
        print(f"spine: stopped by {stopped} while loading the models (log {log_path})", flush=True)
        guard.done()
        return 0
    except BaseException:
        log.close()  # a start-up that failed (a missing model: a one-line error) leaves its log's header
        raise
    period = config.period_samples
    devices, device_rate_hz = choose_devices_and_rate(config)
    bridge = RateBridge(device_rate_hz, RATE_HZ)
    device_period = period * device_rate_hz // RATE_HZ
    # Rings hold seconds whatever the device rate: 2^17 samples = 8.2 s at 16 kHz, 2^19 = 10.9 s at 48 kHz.
    callback = DuplexCallback.with_rings(
        RING_SAMPLES * 4 if device_rate_hz > RATE_HZ else RING_SAMPLES,
        fade_samples=round(config.audio.fade_ms / 1000 * device_rate_hz),
        period_samples=device_period,
    )
    feeder = PlaybackFeeder(callback.playback, callback.controls, None if bridge.identity else bridge.to_device)
    stream = DuplexStream(callback, device_rate_hz, device_period, devices, config.audio.realtime_priority)
    daemon: Daemon

    def reopen(_attempt: int) -> None:
        daemon.inbox.post(_open(stream))

    daemon = Daemon(
        config,
        engines,
        log,
        "wall",
        playback=lambda _report: feeder,
        reopen_audio=reopen,
        observers=observers,
        played_samples_of=lambda epoch: bridge.to_spine_samples(callback.played_samples_of(epoch)),
    )
    loops: list[FsmThread] = []  # the loop below, once made (a scrape or a beat may come before)

    def beat(at_s: float, state: str) -> Beat:
        live = loops[0].liveness if loops else None
        return Beat(
            at_s=at_s,
            rounds=live.rounds if live else 0,
            callback_periods=callback.periods,
            periods_heard=live.periods_heard if live else 0,
            playout_samples=live.playout_samples if live else None,
            underrun_samples=callback.underrun_samples,
            state=state,
        )

    service_thread = ServiceThread(
        notifier, service_log, service.watchdog_interval_s, beat, lambda: daemon.loop.state
    ).start()
    daemon.loop.observers.append(service_thread.observe)
    log.say = lambda message: service_thread.say("warning", message)  # a full disk: said in the journal, once
    clock = RealTime(
        daemon.inbox, signals, period, guard, stopping=service_thread.stopping,
        resting=lambda: isinstance(daemon.loop.state, Idle) and not callback.busy(),
    )  # fmt: skip
    from device.monitor.attach import with_monitor  # here: the monitor sits above runtime (docs/architecture.md)
    from device.monitor.feed import AudioHealth

    card_side = CardSide(
        callback, feeder, stream, bridge, period, signals.mute_requests, service_thread.say,
        daemon.hearing.echo_path_moved,
    )  # fmt: skip

    def health() -> AudioHealth:
        live = loops[0].liveness if loops else None
        return AudioHealth(
            xruns=stream.input_overflows + stream.output_underflows,
            underrun_samples=callback.underrun_samples,
            fsm_rounds=live.rounds if live else 0,
            fsm_work_s=live.work_s_total if live else 0.0,
            fsm_work_max_s=live.work_s_max if live else 0.0,
            fsm_rounds_over_budget=live.rounds_over_budget if live else 0,
            audio_thread_cpu_s=stream.thread_cpu_ns / 1e9,
            audio_resyncs=stream.resyncs,
            output_latency_s=stream.output_latency_s,
            model_non_finite_outputs=daemon.hearing.non_finite_outputs,
        )

    audio, monitor = with_monitor(config.monitor, daemon, card_side, log_path, health)  # off: card_side, None
    fsm = FsmThread(daemon, audio, clock)
    fsm.liveness.budget_s = period / RATE_HZ
    loops.append(fsm)
    if not signals.stop_requested():  # a stop now: the loop ends before its first round, stepping the stop
        opened = _open(stream)
        if isinstance(opened, AudioDeviceLost):
            daemon.loop.handle(opened, clock.now())  # start degraded: the spine retries with back-off
        # READY also when degraded: a daemon waiting for its USB microphone must not die of the start timeout.
        service_thread.ready(daemon.loop.state)
        _arm_faults(service, clock, stream, daemon, service_thread.say)
        print(f"spine: running at {device_rate_hz} Hz on the device (log {log_path}); Ctrl-C to stop", flush=True)
    try:
        fsm.run(lambda: signals.stop_reason or "stop requested")
    finally:  # also after a failing round (exit 1, device/run_cli.py): the monitor's port and the service's lines
        if monitor is not None:
            monitor.stop()
        guard.stuck_in = "writing the service's last lines"
        service_thread.close(SERVICE_CLOSE_S)
        guard.done()
    return 0


def _arm_faults(service: ServiceEnvironment, clock: RealTime, stream: DuplexStream, daemon: Daemon, say: Say) -> None:
    """The test-only faults of SPINE_FAULT count from READY (device/service/faults.py)."""
    faults = service.faults
    if faults.hearing_raises_after_s is not None:
        daemon.fail_hearing_at(time.monotonic() + faults.hearing_raises_after_s)
    if faults.freeze_fsm_after_s is not None:
        clock.freeze_at(time.monotonic() + faults.freeze_fsm_after_s, say)
    if faults.stop_audio_callback_after_s is not None:
        stream.stall_at(time.perf_counter_ns() + round(faults.stop_audio_callback_after_s * 1e9))
    if faults.any:
        say("warning", f"fault injection armed (SPINE_FAULT={service.environ.get('SPINE_FAULT', '')}): test only")


def _in_spine_samples(report: Event, bridge: RateBridge) -> Event:
    """Played counts from the callback are device samples; heard text is timed in Spine samples."""
    if isinstance(report, PlaybackDrained | PlaybackStopped) and not bridge.identity:
        return replace(report, played_samples=bridge.to_spine_samples(report.played_samples))
    return report


def _open(stream: DuplexStream) -> AudioDeviceLost | AudioDeviceRestored:
    try:
        stream.open()
    except UserError as error:
        return AudioDeviceLost(str(error))
    return AudioDeviceRestored()
