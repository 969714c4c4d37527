"""PortAudio's busy loop after a late callback: the stream is restarted when its callback thread spins.

No sound card: a stand-in for sounddevice's stream records stop/start, and the callback thread's CPU time and the
wall clock are given, so a spinning thread (a core's worth of CPU per second of wall time) and a working one
(2 %) are told apart exactly.
"""

from __future__ import annotations

from device.audio.duplex import DuplexCallback
from device.audio.stream import SPIN_WINDOW_NS, DeviceChoice, DuplexStream

PERIOD = 480


class FakePaStream:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def abort(self) -> None:
        self.calls.append("abort")

    def start(self) -> None:
        self.calls.append("start")


def _stream() -> tuple[DuplexStream, FakePaStream]:
    callback = DuplexCallback.with_rings(1 << 14, fade_samples=48, period_samples=PERIOD)
    stream = DuplexStream(callback, 48000, PERIOD, DeviceChoice(None, None))
    fake = FakePaStream()
    stream._stream = fake
    return stream, fake


def _run(stream: DuplexStream, cpu_share: float, seconds: int, start_ns: int = 10**12) -> int:
    """Checks once a second for `seconds` while the callback thread uses `cpu_share` of a core; restarts done."""
    for second in range(seconds + 1):
        stream.thread_cpu_ns += 0 if second == 0 else int(cpu_share * SPIN_WINDOW_NS)
        stream.resync_if_spinning(start_ns + second * SPIN_WINDOW_NS)
    return stream.resyncs


def test_a_working_callback_thread_is_left_alone() -> None:
    stream, fake = _stream()
    assert _run(stream, cpu_share=0.02, seconds=10) == 0
    assert fake.calls == []


def test_a_spinning_callback_thread_is_restarted_within_two_windows() -> None:
    stream, fake = _stream()
    assert _run(stream, cpu_share=0.99, seconds=2) == 1
    assert fake.calls == ["abort", "start"]


def test_after_a_restart_the_new_thread_is_judged_afresh() -> None:
    stream, fake = _stream()
    _run(stream, cpu_share=0.99, seconds=2)
    stream.thread_cpu_ns = 0  # PortAudio's new thread, its CPU time from 0
    assert _run(stream, cpu_share=0.02, seconds=10, start_ns=10**13) == 1
    assert fake.calls == ["abort", "start"]


def test_checks_within_a_window_do_not_judge() -> None:
    stream, fake = _stream()
    stream.resync_if_spinning(10**12)
    stream.thread_cpu_ns += SPIN_WINDOW_NS // 2
    assert not stream.resync_if_spinning(10**12 + SPIN_WINDOW_NS // 2)  # half a window: a busy burst, not yet
    assert fake.calls == []
