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
from device.core.states import Degraded
from device.engines.load import load_engines
from device.errors import UserError
from device.rates import SPINE_RATE_HZ as RATE_HZ
from device.runtime.clock import WallClock
from device.runtime.daemon import Daemon

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


def run(config: Config, log_path: Path, stop: threading.Event | None = None) -> int:
    stop = stop or _stop_on_signals()
    mute_requests: list[MuteChanged] = []  # appended by the signal handlers, handled by the loop below
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
    clock = WallClock(RATE_HZ)
    daemon: Daemon

    def reopen(_attempt: int) -> None:
        daemon.inbox.post(_open(stream))

    daemon = Daemon(config, engines, log_path, "wall", playback=lambda _report: feeder, reopen_audio=reopen)
    opened = _open(stream)
    if isinstance(opened, AudioDeviceLost):
        daemon.loop.handle(opened, clock.now_samples())  # start degraded: the spine retries with back-off
    print(f"spine: running at {device_rate_hz} Hz on the device (log {log_path}); Ctrl-C to stop", flush=True)
    mic = np.zeros(device_period, np.int16)
    played = np.zeros(device_period, np.int16)
    heard_up_to = 0  # Spine-rate sample index of the next mic period for hearing
    next_health = 0.0
    try:
        while not stop.is_set():
            handle = daemon.loop.handle
            while callback.capture.available() >= device_period and callback.reference.available() >= device_period:
                callback.capture.read_into(mic)
                callback.reference.read_into(played)
                bridge.from_device(mic, played)
            for mic_period, played_period in bridge.periods(period):
                for fact in daemon.hear(mic_period, heard_up_to, played_period):
                    handle(fact, clock.now_samples())
                heard_up_to += period
            pending: list[Event] = []
            while callback.reports:
                pending.append(_in_spine_samples(callback.reports.popleft(), bridge))
            pending += daemon.inbox.drain()
            while mute_requests:
                pending.append(mute_requests.pop(0))
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
