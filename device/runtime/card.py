"""`spine run`: the daemon on the real sound card, until SIGINT/SIGTERM.

The FSM thread (this one) runs the one loop (device/runtime/fsm_thread.py) with the card as its audio side: it
moves audio from the capture and reference rings into hearing, tops up the playback ring, steps the callback's
reports, and watches the stream's health. A stream that stops or stalls becomes `AudioDeviceLost`; the spine
answers with `ReopenAudio` after its back-off, and the result comes back as `AudioDeviceRestored` or another
`AudioDeviceLost`.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from types import FrameType

import numpy as np

from device.audio.duplex import DuplexCallback, PlaybackFeeder
from device.audio.rate import RateBridge
from device.audio.stream import DeviceChoice, DuplexStream
from device.config import Config
from device.core.events import (
    AudioDeviceLost,
    AudioDeviceRestored,
    Event,
    MuteChanged,
    PlaybackDrained,
    PlaybackStopped,
)
from device.core.states import Degraded, State
from device.engines.load import load_engines
from device.errors import UserError
from device.rates import SPINE_RATE_HZ as RATE_HZ
from device.runtime.clock import WallClock
from device.runtime.daemon import Daemon
from device.runtime.fsm_thread import FsmThread, Period, inbox_waits
from device.runtime.loop import Inbox, Observer

RING_SAMPLES = 1 << 17  # 8.2 s: the FSM thread may fall behind by seconds (a model load) without losing audio
STALL_S = 1.0
HEALTH_EVERY_S = 0.2


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
        mute_requests: list[MuteChanged],
    ) -> None:
        self._callback, self._feeder, self._stream, self._bridge = callback, feeder, stream, bridge
        self._period = period_samples
        self._device_period = period_samples * bridge.device_rate_hz // RATE_HZ
        self._mic = np.zeros(self._device_period, np.int16)
        self._played = np.zeros(self._device_period, np.int16)
        self._heard_up_to = 0  # Spine-rate sample index of the next mic period for hearing
        self._mute_requests = mute_requests  # appended by the signal handlers
        self._next_health_s = 0.0

    def periods(self) -> Iterator[Period]:
        callback, device_period = self._callback, self._device_period
        while callback.capture.available() >= device_period and callback.reference.available() >= device_period:
            callback.capture.read_into(self._mic)
            callback.reference.read_into(self._played)
            self._bridge.from_device(self._mic, self._played)
        return self._spine_periods()

    def _spine_periods(self) -> Iterator[Period]:
        for mic, played in self._bridge.periods(self._period):
            yield Period(self._heard_up_to, mic, played)
            self._heard_up_to += self._period

    def early_reports(self) -> list[Event]:
        return []

    def reports(self) -> list[Event]:
        reports = self._callback.reports
        pending: list[Event] = []
        while reports:
            pending.append(_in_spine_samples(reports.popleft(), self._bridge))
        return pending

    def requests(self) -> list[Event]:
        pending: list[Event] = []
        while self._mute_requests:
            pending.append(self._mute_requests.pop(0))
        return pending

    def pump(self) -> None:
        self._feeder.pump()

    def health(self, state: State) -> Event | None:
        if time.monotonic() < self._next_health_s:
            return None
        self._next_health_s = time.monotonic() + HEALTH_EVERY_S
        problem = self._stream.health(time.perf_counter_ns(), int(STALL_S * 1e9))
        if problem is None or isinstance(state, Degraded):  # degraded: the spine already reopens with back-off
            return None
        self._stream.close()
        return AudioDeviceLost(problem)

    def playout_samples(self) -> int | None:
        if not self._callback.busy():
            return None
        return self._bridge.to_spine_samples(self._callback.played_samples)

    def close(self) -> None:
        self._stream.close()


class RealTime:
    """The wall clock of `spine run`: it runs until `stop` is set; between rounds the loop waits on the inbox."""

    one_instant = False

    def __init__(self, inbox: Inbox, stop: threading.Event, period_samples: int) -> None:
        self._inbox, self._stop = inbox, stop
        self._clock = WallClock(RATE_HZ)
        self._wait_s = period_samples / RATE_HZ / 2

    def now(self) -> int:
        return self._clock.now_samples()

    def ended(self) -> bool:
        return self._stop.is_set()

    def due(self, _now: int) -> list[Event]:
        return []  # the workers post their results into the inbox

    def waits(self) -> Iterator[list[Event]]:
        return inbox_waits(self._inbox, self._wait_s)


def run(config: Config, log_path: Path, stop: threading.Event | None = None, observers: Iterable[Observer] = ()) -> int:
    stop = stop or _stop_on_signals()
    mute_requests: list[MuteChanged] = []  # appended by the signal handlers, stepped by the loop
    if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
        # `systemctl kill -s USR1 spine` mutes the microphone, USR2 unmutes it.
        signal.signal(signal.SIGUSR1, lambda _n, _f: mute_requests.append(MuteChanged(True, "SIGUSR1")))
        signal.signal(signal.SIGUSR2, lambda _n, _f: mute_requests.append(MuteChanged(False, "SIGUSR2")))
    sys.setswitchinterval(config.audio.switch_interval_ms / 1000)
    engines = load_engines(config)
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
    stream = DuplexStream(callback, device_rate_hz, device_period, devices)
    daemon: Daemon

    def reopen(_attempt: int) -> None:
        daemon.inbox.post(_open(stream))

    daemon = Daemon(
        config, engines, log_path, "wall", playback=lambda _report: feeder, reopen_audio=reopen, observers=observers
    )
    clock = RealTime(daemon.inbox, stop, period)
    fsm = FsmThread(daemon, CardSide(callback, feeder, stream, bridge, period, mute_requests), clock)
    opened = _open(stream)
    if isinstance(opened, AudioDeviceLost):
        daemon.loop.handle(opened, clock.now())  # start degraded: the spine retries with back-off
    print(f"spine: running at {device_rate_hz} Hz on the device (log {log_path}); Ctrl-C to stop", flush=True)
    fsm.run("stop requested")
    return 0


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


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def on_signal(_number: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stop
