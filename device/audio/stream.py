"""The real sound card: one full-duplex PortAudio callback stream (device/audio/portaudio.py) running
`DuplexCallback`.

The PortAudio callback runs on PortAudio's thread and needs the GIL, so it only wraps buffers (no copy of
the mic bytes), lets `DuplexCallback` copy between rings, and records its own duration and start time into
preallocated arrays for the bench. It never logs, locks or waits (invariant 8). Errors of the stream are
facts for the spine: the FSM loop polls `health()` and posts `AudioDeviceLost`; the spine decides when to
`ReopenAudio`.

A stream that ran late once can latch into a busy loop: PortAudio 19.6's ALSA full-duplex loop, on the `pulse`
ALSA plugin, after one late callback (an output underflow) polls the plugin's always-ready descriptors without
pause, about a whole core, for as long as the stream runs (measured: 2 % of a core before one 0.3 s late
callback, 99 % after, at 100 callbacks a second either way). Whatever ran late (a GIL held elsewhere, a
browser's WebRTC session starting), it never recovered by itself. So the callback notes its thread's CPU
time, and `resync_if_spinning` (the FSM loop's health check) stops and starts the stream when that thread has
used more than `SPIN_SHARE` of a core over `SPIN_WINDOW_NS`: the stop (about 11 ms) puts capture and playback
back in step, and the loop waits again.

Real-time priority: on the first period of each stream the callback asks for SCHED_FIFO at `realtime_priority`
(0: it does not ask) for PortAudio's thread - the only place that thread can be reached - and records the outcome
in `realtime` for the FSM thread to log (device/service/realtime.py). Granted or refused, it carries on.

Latency that rises with the machine's load: the stream opens at the device's low latency (about 30 ms of output
through PulseAudio) and, each time the callback lost microphone audio (`capture_lag_floor_ns` rose: PortAudio's
ALSA full-duplex loop drops the capture buffer when it restarts after an underrun) or played `UNDERFLOWS_PER_STEP`
underruns, the card side (device/runtime/card.py) reopens it one step up `LATENCY_STEPS_S`, as PulseAudio raises
its own latency on underruns. Measured on the null sink beside `stress-ng --cpu 2` and a GIL-holding thread, 25-30
s each, input/output latency as PortAudio reported it: at the low 0.02/0.03 s, 0.03-6.6 s of the mic lost (PyAudio,
which cannot ask for another latency: 0.3, 2.6, 4.3, 6.6 s; the same PortAudio through sounddevice: 0.03, 1.9, 2.9
s), 0.04/0.05 s 1.3 and 3.6 s, 0.06/0.11 s 0.01 s (two runs), 0.18/0.13 s none (three runs). A step
costs its latency on every cut (the audio already handed to the device plays
out), so an idle machine stays low.

A test may make the callback stop delivering (`stall_at`, from SPINE_FAULT: device/service/faults.py): from
then on it returns silence at once and touches neither the rings nor its counters, as if PortAudio had stopped
calling it.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from device.audio.duplex import DuplexCallback
from device.audio.portaudio import INPUT_OVERFLOW, OUTPUT_UNDERFLOW, DuplexPortAudio
from device.errors import UserError
from device.thread_name import name_this_thread

STATS_PERIODS = 1 << 14  # the last ~2.7 minutes of callback timings at 10 ms periods
SPIN_WINDOW_NS = 1_000_000_000
SPIN_SHARE = 0.5
"""The callback's own work is about 2 % of a core; PortAudio's latched poll loop about 100 %."""
NEVER_NS = 1 << 62
LATENCY_STEPS_S: tuple[float | None, ...] = (None, 0.06, 0.12, 0.2)
"""Suggested input and output latency per step; None: the device's low latency (PortAudio's default)."""
UNDERFLOWS_PER_STEP = 3
LOST_MIC_PER_STEP_NS = 50_000_000
"""Capture lag that rose by this much between two health checks is audio lost, not a late callback."""
QUIET_BEFORE_STEP_DOWN_NS = 600 * 1_000_000_000
"""A stream raised a step goes one step back down after this long without an xrun or lost mic audio, while
Spine is idle. Without it one busy minute (an upgrade, a backup) left every later cut slower by the added latency
until a restart (two loaded real-stream hours: three steps up each, none down, while the cut's onset -> silence
grew over the hour). Ten minutes: a machine still busy steps up again at most once in that time."""


@dataclass(frozen=True)
class RealtimeOutcome:
    """What the callback thread's request for SCHED_FIFO got."""

    priority: int
    error: int
    """0: granted; otherwise the errno of the refusal (EPERM: no RLIMIT_RTPRIO, or RestrictRealtime=)."""


def ask_for_realtime(priority: int) -> RealtimeOutcome:
    """Puts the calling thread under SCHED_FIFO at `priority` (Linux); the outcome, never an exception."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as error:
        return RealtimeOutcome(priority, error.errno or errno.EINVAL)
    except AttributeError:  # not Linux: no sched_setscheduler
        return RealtimeOutcome(priority, errno.ENOSYS)
    return RealtimeOutcome(priority, 0)


@dataclass(frozen=True)
class DeviceChoice:
    input_index: int | None
    output_index: int | None


class DuplexStream:
    def __init__(
        self,
        callback: DuplexCallback,
        rate_hz: int,
        period_samples: int,
        devices: DeviceChoice,
        realtime_priority: int = 0,
        clock_ns: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        """`clock_ns` times the callback (perf_counter_ns; a test gives its own)."""
        self._clock_ns = clock_ns
        self._callback = callback
        self._rate_hz = rate_hz
        self._period = period_samples
        self._devices = devices
        self._stream: Any = None
        self.durations_ns = np.zeros(STATS_PERIODS, np.int64)
        self.starts_ns = np.zeros(STATS_PERIODS, np.int64)
        self.calls = 0
        self.input_overflows = 0
        self.output_underflows = 0
        self.output_latency_s = 0.0
        self.failure: str | None = None  # set by the callback if it ever fails; the stream is then aborted
        self.thread_cpu_ns = 0
        """CPU time of PortAudio's callback thread at its latest callback (its poll loop included)."""
        self.resyncs = 0
        self._window = (0, 0)  # (wall ns, thread CPU ns) where the current spin window began
        self._realtime_priority = realtime_priority
        self._ask_realtime = False  # set by `open`: the new stream's first callback asks
        self.realtime: RealtimeOutcome | None = None
        """What the latest stream's callback thread got when it asked for SCHED_FIFO (None: not asked yet)."""
        self._stall_at_ns = NEVER_NS
        self.stalled_at_ns = 0
        """perf_counter_ns of the first period the injected stall swallowed (0: none yet)."""
        self.latency_step = 0
        """Index into `LATENCY_STEPS_S` the stream opens with (`raise_latency` moves it up)."""
        self._first_call_ns = 0
        self._frames = 0
        self._ns_per_frame = 1e9 / rate_hz
        self.capture_lag_floor_ns = NEVER_NS
        """Least (callback start - first callback start - time of the frames delivered before) since the card
        side last took it (`take_capture_lag_floor`): late callbacks that catch up leave it alone, lost capture
        raises it for good."""

    def stall_at(self, at_ns: int) -> None:
        """Test-only fault: from perf_counter_ns `at_ns` on, the callback stops delivering (see the docstring)."""
        self._stall_at_ns = at_ns

    def open(self) -> None:
        """Open and start the stream; any failure is a UserError saying what and how to look into it."""
        from device.audio.devices import quiet_stderr

        self.close()
        self.failure = None
        self._ask_realtime = self._realtime_priority > 0
        self._first_call_ns, self._frames, self.capture_lag_floor_ns = 0, 0, NEVER_NS
        try:
            with quiet_stderr():  # ALSA and JACK print pages of probing noise while PortAudio starts
                self._stream = DuplexPortAudio(
                    self._rate_hz,
                    self._period,
                    (self._devices.input_index, self._devices.output_index),
                    LATENCY_STEPS_S[self.latency_step],
                    self._on_period,
                )
            self.output_latency_s = self._stream.output_latency_s
            self._stream.start()
            self._window = (0, 0)
        except OSError as error:  # PortAudioError included
            self.close()
            raise UserError(
                f"cannot open the sound card full duplex at {self._rate_hz} Hz: {error} "
                "(run `spine doctor` to see what the devices support)"
            ) from None

    def raise_latency(self) -> bool:
        """Reopen one step up `LATENCY_STEPS_S` (False: already at the top, nothing done). Raises UserError as
        `open` does."""
        if self.latency_step + 1 >= len(LATENCY_STEPS_S):
            return False
        self.latency_step += 1
        self.open()
        return True

    def lower_latency(self) -> bool:
        """Reopen one step down `LATENCY_STEPS_S` (False: already at the bottom, nothing done). Raises UserError as
        `open` does."""
        if self.latency_step == 0:
            return False
        self.latency_step -= 1
        self.open()
        return True

    def now_ns(self) -> int:
        """The clock the callback is timed by (perf_counter_ns; a test's own)."""
        return self._clock_ns()

    def take_capture_lag_floor(self) -> int:
        """The capture lag floor since the last take (NEVER_NS: no callback since), and a fresh floor."""
        floor, self.capture_lag_floor_ns = self.capture_lag_floor_ns, NEVER_NS
        return floor

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()  # a device already gone: PortAudio's errors on the way out say nothing new

    def health(self, now_ns: int, stall_ns: int) -> str | None:
        """None while the stream runs; otherwise why it does not (stopped, or no callback for `stall_ns`)."""
        stream = self._stream
        if stream is None:
            return "the stream is closed"
        failure = self.failure or stream.failure
        if failure is not None:
            return f"the audio callback failed: {failure}"
        try:
            if not stream.active:
                return "the stream stopped (device unplugged or the sound server went away)"
        except OSError as error:
            return f"the stream failed: {error}"
        last = int(self.starts_ns[(self.calls - 1) % STATS_PERIODS]) if self.calls else 0
        if self.calls and now_ns - last > stall_ns:
            return f"no audio callback for {(now_ns - last) / 1e9:.1f} s (device stalled)"
        return None

    def resync_if_spinning(self, now_ns: int) -> bool:
        """On the FSM thread: True if the callback's thread used more than `SPIN_SHARE` of a core over the last
        window, and the stream was stopped and started again to end PortAudio's busy loop."""
        began_ns, began_cpu_ns = self._window
        if now_ns - began_ns < SPIN_WINDOW_NS:
            return False
        cpu_ns = self.thread_cpu_ns
        self._window = (now_ns, cpu_ns)
        stream = self._stream
        if began_ns == 0 or stream is None or (cpu_ns - began_cpu_ns) < SPIN_SHARE * (now_ns - began_ns):
            return False  # a new thread after a start begins at 0: a negative difference, not a spin
        try:
            stream.abort()  # no drain: see DuplexPortAudio.abort
            stream.start()
        except OSError:
            return False  # the device is going away: `health` reports it
        self.resyncs += 1
        self._window = (0, 0)
        self._first_call_ns, self._frames = 0, 0  # the lag counts from the restarted stream's first period
        return True

    def _on_period(self, mic: npt.NDArray[np.int16], out: npt.NDArray[np.int16], status: int) -> None:
        started = self._clock_ns()
        frame_count = len(out)
        if started >= self._stall_at_ns:
            self.stalled_at_ns = self.stalled_at_ns or started
            out[:] = 0
            return
        if self._ask_realtime:  # once per stream, on its thread: syscalls, no I/O
            self._ask_realtime = False
            self.realtime = ask_for_realtime(self._realtime_priority)
            name_this_thread("spine-audio")
        if not self._first_call_ns:
            self._first_call_ns = started
        lag_ns = started - self._first_call_ns - int(self._frames * self._ns_per_frame)
        if lag_ns < self.capture_lag_floor_ns:
            self.capture_lag_floor_ns = lag_ns
        self._frames += frame_count
        self._callback.process(mic, out)
        if status & INPUT_OVERFLOW:
            self.input_overflows += 1
        if status & OUTPUT_UNDERFLOW:
            self.output_underflows += 1
        slot = self.calls % STATS_PERIODS
        self.starts_ns[slot] = started
        self.durations_ns[slot] = self._clock_ns() - started
        self.thread_cpu_ns = time.thread_time_ns()
        self.calls += 1
