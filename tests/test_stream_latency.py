"""Latency that rises with the machine's load (device/audio/stream.py, device/runtime/card.py).

The stream's callback is driven with an injected clock, as PortAudio would drive it: on time, late and catching
up, or after audio was lost. The card side reopens one step up `LATENCY_STEPS_S` when the mic lost audio or the
output ran dry; the stand-in below only records the reopen instead of opening a sound card (the real reopen on
a PulseAudio null sink: tests/test_stream_pulse.py).
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from device.audio.duplex import DuplexCallback, PlaybackFeeder
from device.audio.portaudio import INPUT_OVERFLOW, OUTPUT_UNDERFLOW
from device.audio.rate import RateBridge
from device.audio.stream import (
    LATENCY_STEPS_S,
    NEVER_NS,
    QUIET_BEFORE_STEP_DOWN_NS,
    UNDERFLOWS_PER_STEP,
    DeviceChoice,
    DuplexStream,
)
from device.core import events as ev
from device.errors import UserError
from device.runtime.card import CardSide

RATE_HZ = 16000
PERIOD = 160
PERIOD_NS = 10_000_000
ON_TIME = 0
UNDERFLOW = OUTPUT_UNDERFLOW


class Clock:
    def __init__(self) -> None:
        self.now_ns = 10**12

    def __call__(self) -> int:
        return self.now_ns


class SteppedStream(DuplexStream):
    """The real stream object, whose open only records the step (no sound card in a unit test)."""

    def __init__(self, callback: DuplexCallback, clock: Clock) -> None:
        super().__init__(callback, RATE_HZ, PERIOD, DeviceChoice(None, None), clock_ns=clock)
        self.opened_steps: list[int] = []

    def open(self) -> None:
        self.opened_steps.append(self.latency_step)
        self.output_latency_s = LATENCY_STEPS_S[self.latency_step] or 0.03
        self._first_call_ns, self._frames, self.capture_lag_floor_ns = 0, 0, NEVER_NS


def _rig() -> tuple[SteppedStream, Clock, CardSide, list[str], list[tuple[int, bool]]]:
    callback = DuplexCallback.with_rings(1 << 14, fade_samples=64, period_samples=PERIOD)
    clock = Clock()
    stream = SteppedStream(callback, clock)
    said: list[str] = []
    moved: list[tuple[int, bool]] = []
    feeder = PlaybackFeeder(callback.playback, callback.controls)
    card = CardSide(
        callback, feeder, stream, RateBridge(RATE_HZ, RATE_HZ), PERIOD, deque(),
        lambda _level, message: said.append(message), lambda at, new_latency: moved.append((at, new_latency)),
    )  # fmt: skip
    return stream, clock, card, said, moved


def _periods(stream: DuplexStream, clock: Clock, count: int, gap_ns: int = PERIOD_NS, flags: int = ON_TIME) -> None:
    """`count` callbacks, `gap_ns` apart, each delivering one period."""
    mic = np.zeros(PERIOD, np.int16)
    out = np.zeros(PERIOD, np.int16)
    for _ in range(count):
        stream._on_period(mic, out, flags)
        clock.now_ns += gap_ns


def _checks(stream: DuplexStream, clock: Clock, card: CardSide, windows: int) -> None:
    """`windows` health checks 0.2 s apart (20 periods each), the stream on time."""
    for _ in range(windows):
        _periods(stream, clock, 20)
        assert card._keep_up() is None


def test_callbacks_on_time_leave_the_lag_floor_flat() -> None:
    stream, clock, _card, _said, _moved = _rig()
    _periods(stream, clock, 20)
    first = stream.take_capture_lag_floor()
    _periods(stream, clock, 20)
    assert stream.take_capture_lag_floor() == first == 0
    assert stream.take_capture_lag_floor() == NEVER_NS  # no callback since the last take


def test_a_late_callback_that_catches_up_loses_nothing() -> None:
    stream, clock, _card, _said, _moved = _rig()
    _periods(stream, clock, 20)
    stream.take_capture_lag_floor()
    clock.now_ns += 300_000_000  # 0.3 s late, then 30 periods back to back: the buffer held them
    _periods(stream, clock, 30, gap_ns=0)
    _periods(stream, clock, 20)
    assert stream.take_capture_lag_floor() <= 0
    _periods(stream, clock, 20)
    assert stream.take_capture_lag_floor() <= 0


def test_lost_capture_raises_the_floor_by_what_was_lost() -> None:
    stream, clock, _card, _said, _moved = _rig()
    _periods(stream, clock, 20)
    before = stream.take_capture_lag_floor()
    clock.now_ns += 300_000_000  # 0.3 s with no callback and nothing to catch up: lost
    _periods(stream, clock, 20)
    assert stream.take_capture_lag_floor() - before == 300_000_000


def test_the_card_steps_up_once_when_the_mic_lost_audio_and_tells_hearing() -> None:
    stream, clock, card, said, moved = _rig()
    stream.open()
    _checks(stream, clock, card, 5)
    assert stream.opened_steps == [0] and said == [] and moved == []
    clock.now_ns += 120_000_000  # lost 120 ms
    _periods(stream, clock, 20)
    assert card._keep_up() is None
    assert stream.opened_steps == [0, 1]
    assert len(said) == 1 and "lost 120 ms of the microphone" in said[0] and "60 ms of output latency" in said[0]
    assert [new_latency for _at, new_latency in moved] == [True]  # the echo's delay changes: hearing relocks
    _checks(stream, clock, card, 10)  # the reopened stream's start burst is not a loss
    assert stream.opened_steps == [0, 1]


def test_a_drift_of_the_card_clock_is_not_a_loss() -> None:
    stream, clock, card, _said, _moved = _rig()
    stream.open()
    for _ in range(3000):  # 10 minutes, the card 100 ppm slower than our clock: 60 ms behind in all
        _periods(stream, clock, 20, gap_ns=PERIOD_NS + 1000)
        assert card._keep_up() is None
    assert stream.opened_steps == [0]


def test_underruns_step_up_and_the_top_step_stays() -> None:
    stream, clock, card, said, _moved = _rig()
    stream.open()
    _checks(stream, clock, card, 3)
    for step in range(1, len(LATENCY_STEPS_S) + 2):
        _periods(stream, clock, UNDERFLOWS_PER_STEP - 1, flags=UNDERFLOW)
        assert card._keep_up() is None
        assert stream.latency_step == min(step - 1, len(LATENCY_STEPS_S) - 1)  # fewer: no step
        _periods(stream, clock, 1, flags=UNDERFLOW)
        card._keep_up()
        _checks(stream, clock, card, 3)
    assert stream.opened_steps == list(range(len(LATENCY_STEPS_S)))
    assert len(said) == len(LATENCY_STEPS_S) - 1 and all("ran dry 3 times" in line for line in said)


def test_xruns_and_a_latency_step_are_facts_for_the_log_with_the_next_reports() -> None:
    stream, clock, card, _said, moved = _rig()
    stream.open()
    _checks(stream, clock, card, 3)
    list(card.periods())
    assert card.early_reports() == []  # on time: nothing to say
    _periods(stream, clock, UNDERFLOWS_PER_STEP, flags=UNDERFLOW)
    list(card.periods())
    assert [at_new[1] for at_new in moved] == [False]  # hearing heard of the xruns first, on the round's periods
    card._keep_up()
    assert card.early_reports() == [
        ev.AudioXrun(underflows=UNDERFLOWS_PER_STEP, overflows=0),
        ev.AudioLatencyRaised(output_latency_ms=60.0, cause=f"ran dry {UNDERFLOWS_PER_STEP} times"),
    ]
    assert card.early_reports() == [] and card.reports() == []  # each said once, before the heard facts
    _periods(stream, clock, 1, flags=INPUT_OVERFLOW)
    list(card.periods())
    assert card.early_reports() == [ev.AudioXrun(underflows=0, overflows=1)]


def _quiet_checks(stream: DuplexStream, clock: Clock, card: CardSide, seconds: float, idle: bool) -> None:
    """Health checks 0.2 s apart for `seconds`, the stream on time (`_checks` with the idle flag)."""
    for _ in range(round(seconds / 0.2)):
        _periods(stream, clock, 20)
        assert card._keep_up(idle) is None


def _raised_twice(stream: SteppedStream, clock: Clock, card: CardSide) -> None:
    stream.open()
    _checks(stream, clock, card, 3)
    for _ in range(2):
        _periods(stream, clock, UNDERFLOWS_PER_STEP, flags=UNDERFLOW)
        card._keep_up(idle=True)
        _checks(stream, clock, card, 3)
    assert stream.latency_step == 2
    card.early_reports()


def test_a_raised_stream_steps_back_down_after_ten_quiet_minutes_while_idle() -> None:
    stream, clock, card, said, moved = _rig()
    _raised_twice(stream, clock, card)
    moved.clear()
    quiet_s = QUIET_BEFORE_STEP_DOWN_NS / 1e9
    _quiet_checks(stream, clock, card, quiet_s - 5, idle=True)
    assert stream.latency_step == 2  # not quite ten minutes
    _quiet_checks(stream, clock, card, 10, idle=True)
    assert stream.opened_steps == [0, 1, 2, 1]
    (lowered,) = card.early_reports()
    assert isinstance(lowered, ev.AudioLatencyLowered) and lowered.output_latency_ms == 60.0
    assert quiet_s <= lowered.quiet_s < quiet_s + 1
    assert "kept up for 10 minutes" in said[-1] and [new for _at, new in moved] == [True]  # hearing relocks
    _quiet_checks(stream, clock, card, quiet_s + 5, idle=True)
    assert stream.opened_steps == [0, 1, 2, 1, 0]  # and the next ten minutes, to the device's own latency
    _quiet_checks(stream, clock, card, quiet_s + 5, idle=True)
    assert stream.opened_steps == [0, 1, 2, 1, 0]  # the bottom stays


def test_no_step_down_while_busy_and_an_xrun_restarts_the_quiet_spell() -> None:
    stream, clock, card, _said, _moved = _rig()
    _raised_twice(stream, clock, card)
    quiet_s = QUIET_BEFORE_STEP_DOWN_NS / 1e9
    _quiet_checks(stream, clock, card, quiet_s + 60, idle=False)  # an answer playing: a reopen would cut it
    assert stream.opened_steps == [0, 1, 2]
    _periods(stream, clock, 1, flags=UNDERFLOW)  # one xrun, not enough for a step up
    _periods(stream, clock, 19)
    list(card.periods())  # the round's periods, where the card sees the xrun
    assert card._keep_up(idle=True) is None
    _quiet_checks(stream, clock, card, quiet_s - 5, idle=True)
    assert stream.opened_steps == [0, 1, 2]  # the quiet spell began again at the xrun
    clock.now_ns += 120_000_000  # lost mic audio: a step up, and the spell begins again
    _periods(stream, clock, 20)
    card._keep_up(idle=True)
    assert stream.opened_steps == [0, 1, 2, 3]
    _quiet_checks(stream, clock, card, quiet_s - 5, idle=True)
    assert stream.opened_steps == [0, 1, 2, 3]
    _quiet_checks(stream, clock, card, 10, idle=True)
    assert stream.opened_steps == [0, 1, 2, 3, 2]


def test_a_device_portaudio_does_not_have_is_a_clear_error() -> None:
    callback = DuplexCallback.with_rings(1 << 12, fade_samples=8, period_samples=PERIOD)
    stream = DuplexStream(callback, RATE_HZ, PERIOD, DeviceChoice(9999, 9999))
    with pytest.raises(UserError, match=r"PortAudio has no device 9999 \(run `spine doctor`"):
        stream.open()
    assert stream.health(0, 1) == "the stream is closed"
