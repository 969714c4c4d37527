"""`spine run`: the daemon on the real sound card, until SIGINT/SIGTERM.

The FSM thread (this one) moves audio from the capture and reference rings into hearing, tops up the
playback ring, drains the callback's reports and the workers' inbox, fires timers, and watches the stream's
health. A stream that stops or stalls becomes `AudioDeviceLost`; the spine answers with `ReopenAudio` after
its back-off, and the result comes back as `AudioDeviceRestored` or another `AudioDeviceLost`.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import numpy as np

from device.audio.duplex import DuplexCallback, PlaybackFeeder
from device.audio.ring import SpscRing
from device.audio.stream import DeviceChoice, DuplexStream
from device.config import RATE_HZ, Config, samples
from device.core.events import AudioDeviceLost, AudioDeviceRestored, Event
from device.core.states import Degraded
from device.errors import UserError
from device.organs import load_engines
from device.runtime.clock import WallClock
from device.runtime.daemon import Daemon

RING_SAMPLES = 1 << 17  # 8.2 s: the FSM thread may fall behind by seconds (a model load) without losing audio
STALL_S = 1.0
HEALTH_EVERY_S = 0.2


def choose_devices(config: Config) -> DeviceChoice:
    from device.audio.devices import find_device

    return DeviceChoice(
        input_index=find_device(config.audio.input_device, "input").index,
        output_index=find_device(config.audio.output_device, "output").index,
    )


def run(config: Config, log_path: Path, stop: threading.Event | None = None) -> int:
    stop = stop or _stop_on_signals()
    sys.setswitchinterval(config.audio.switch_interval_ms / 1000)
    engines = load_engines(config)
    period = config.period_samples
    callback = DuplexCallback(
        capture=SpscRing(RING_SAMPLES, overrun="drop_oldest"),
        playback=SpscRing(RING_SAMPLES, overrun="refuse"),
        reference=SpscRing(RING_SAMPLES, overrun="drop_oldest"),
        fade_samples=samples(config.audio.fade_ms / 1000),
        period_samples=period,
    )
    feeder = PlaybackFeeder(callback.playback, callback.controls)
    stream = DuplexStream(callback, RATE_HZ, period, choose_devices(config))
    clock = WallClock(RATE_HZ)
    daemon: Daemon

    def reopen(_attempt: int) -> None:
        daemon.inbox.post(_open(stream))

    daemon = Daemon(config, engines, log_path, "wall", playback=lambda _report: feeder, reopen_audio=reopen)
    opened = _open(stream)
    if isinstance(opened, AudioDeviceLost):
        daemon.loop.handle(opened, clock.now_samples())  # start degraded: the spine retries with back-off
    print(f"spine: running (log {log_path}); Ctrl-C to stop", flush=True)
    mic = np.zeros(period, np.int16)
    played = np.zeros(period, np.int16)
    next_health = 0.0
    try:
        while not stop.is_set():
            handle = daemon.loop.handle
            while callback.capture.available() >= period and callback.reference.available() >= period:
                start = callback.capture.read
                callback.capture.read_into(mic)
                callback.reference.read_into(played)
                for fact in daemon.hear(mic, start, played):
                    handle(fact, clock.now_samples())
            pending: list[Event] = []
            while callback.reports:
                pending.append(callback.reports.popleft())
            pending += daemon.inbox.drain()
            pending += daemon.timers.pop_due(clock.now_samples())
            for event in pending:
                handle(event, clock.now_samples())
            feeder.pump()
            if time.monotonic() >= next_health:
                next_health = time.monotonic() + HEALTH_EVERY_S
                problem = stream.health(time.perf_counter_ns(), int(STALL_S * 1e9))
                if problem is not None and not isinstance(daemon.loop.state, Degraded):
                    stream.close()
                    handle(AudioDeviceLost(problem), clock.now_samples())
            arrived = daemon.inbox.wait(period / RATE_HZ / 2)
            if arrived is not None:
                handle(arrived, clock.now_samples())
    finally:
        stream.close()
        daemon.stop(clock.now_samples(), "stop requested")
    return 0


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
