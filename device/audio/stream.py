"""The real sound card: one full-duplex PyAudio (PortAudio) callback stream running `DuplexCallback`.

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

A test may make the callback stop delivering (`stall_at`, from SPINE_FAULT: device/service/faults.py): from
then on it returns silence at once and touches neither the rings nor its counters, as if PortAudio had stopped
calling it.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from device.audio.duplex import DuplexCallback
from device.errors import UserError

STATS_PERIODS = 1 << 14  # the last ~2.7 minutes of callback timings at 10 ms periods
SPIN_WINDOW_NS = 1_000_000_000
SPIN_SHARE = 0.5
"""The callback's own work is about 2 % of a core; PortAudio's latched poll loop about 100 %."""
NEVER_NS = 1 << 62


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
    ) -> None:
        self._callback = callback
        self._rate_hz = rate_hz
        self._period = period_samples
        self._devices = devices
        self._out = np.zeros(period_samples * 4, np.int16)  # PortAudio may ask for more than one period
        self._pa: Any = None
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

    def stall_at(self, at_ns: int) -> None:
        """Test-only fault: from perf_counter_ns `at_ns` on, the callback stops delivering (see the docstring)."""
        self._stall_at_ns = at_ns

    def open(self) -> None:
        """Open and start the stream; any failure is a UserError saying what and how to look into it."""
        import pyaudio  # type: ignore[import-untyped]  # PyAudio ships no type information

        from device.audio.devices import quiet_stderr

        self.close()
        self.failure = None
        self._ask_realtime = self._realtime_priority > 0
        try:
            with quiet_stderr():  # ALSA and JACK print pages of probing noise while PortAudio starts
                self._pa = pyaudio.PyAudio()
            self._stream = self._pa.open(
                format=pyaudio.paInt16,
                channels=1,
                rate=self._rate_hz,
                input=True,
                output=True,
                input_device_index=self._devices.input_index,
                output_device_index=self._devices.output_index,
                frames_per_buffer=self._period,
                stream_callback=self._on_period,
            )
            self.output_latency_s = float(self._stream.get_output_latency())
            self._stream.start_stream()
            self._window = (0, 0)
        except (OSError, ValueError) as error:
            self.close()
            raise UserError(
                f"cannot open the sound card full duplex at {self._rate_hz} Hz: {error} "
                "(run `spine doctor` to see what the devices support)"
            ) from None

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop_stream()
                stream.close()
            except OSError:
                pass  # the device is already gone: nothing left to stop
        pa, self._pa = self._pa, None
        if pa is not None:
            pa.terminate()

    def health(self, now_ns: int, stall_ns: int) -> str | None:
        """None while the stream runs; otherwise why it does not (stopped, or no callback for `stall_ns`)."""
        stream = self._stream
        if stream is None:
            return "the stream is closed"
        if self.failure is not None:
            return f"the audio callback failed: {self.failure}"
        try:
            if not stream.is_active():
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
            stream.stop_stream()
            stream.start_stream()
        except OSError:
            return False  # the device is going away: `health` reports it
        self.resyncs += 1
        self._window = (0, 0)
        return True

    def _on_period(self, in_data: bytes | None, frame_count: int, time_info: Any, status: int) -> tuple[bytes, int]:
        started = time.perf_counter_ns()
        out = self._out[:frame_count]
        if started >= self._stall_at_ns:
            self.stalled_at_ns = self.stalled_at_ns or started
            out[:] = 0
            return out.tobytes(), 0
        if self._ask_realtime:  # once per stream, on its thread: a syscall, no I/O
            self._ask_realtime = False
            self.realtime = ask_for_realtime(self._realtime_priority)
        mic: npt.NDArray[np.int16] = np.frombuffer(in_data, np.int16) if in_data else np.zeros(frame_count, np.int16)
        self._callback.process(mic, out)
        if status & 2:  # paInputOverflow
            self.input_overflows += 1
        if status & 4:  # paOutputUnderflow
            self.output_underflows += 1
        slot = self.calls % STATS_PERIODS
        self.starts_ns[slot] = started
        self.durations_ns[slot] = time.perf_counter_ns() - started
        self.thread_cpu_ns = time.thread_time_ns()
        self.calls += 1
        return out.tobytes(), 0  # 0 = paContinue; PyAudio wants bytes back: its one allocation per period
