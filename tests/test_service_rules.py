"""The service's pure parts: the watchdog's rule and what it says, the sd_notify messages, the environment
(WATCHDOG_USEC, JOURNAL_STREAM, SPINE_FAULT), the journal's fields, the real-time outcome's line, and the
service thread's order of messages. No sleeps: beats carry their own time, and the thread is only joined."""

from __future__ import annotations

import errno
import os
import threading
from dataclasses import replace

import numpy as np
import pytest

from device.audio.duplex import DuplexCallback
from device.audio.stream import DeviceChoice, DuplexStream, RealtimeOutcome, ask_for_realtime
from device.core.events import AudioDeviceLost, MuteChanged, Started, WakeDetected
from device.core.states import Degraded, Idle, Listening, Muted, State
from device.errors import UserError
from device.service.faults import NO_FAULTS, Faults, faults_from_environment
from device.service.journal import ServiceLog, journal_stream_is_stderr
from device.service.notify import MAX_VALUE_CHARS, Notifier, notify_message, ready_message, status_text
from device.service.realtime import describe_realtime
from device.service.service_thread import ServiceThread
from device.service.watchdog import RULE, Beat, Watchdog, watchdog_interval_s, withheld_because

# ------------------------------------------------------------------------------------------ the watchdog's rule

WAS = Beat(at_s=0.0, rounds=100, callback_periods=50, periods_heard=50, playout_samples=None, underrun_samples=0,
           state="Idle")  # fmt: skip
WAKE = WakeDetected("hey_jarvis", 0.9, 0)
HEALTHY = replace(WAS, at_s=0.5, rounds=200, callback_periods=100, periods_heard=100)
PLAYING = replace(WAS, playout_samples=16000, state="Speaking")
PLAYED_ON = replace(HEALTHY, playout_samples=24000, state="Speaking")

REASONS = {name: reason for reason, holds in RULE for name in [holds.__name__.strip("_")]}


@pytest.mark.parametrize(
    ("was", "now", "withheld"),
    [
        (WAS, HEALTHY, None),
        (WAS, replace(HEALTHY, rounds=100), "rounds"),  # the FSM loop is stuck
        (WAS, replace(HEALTHY, callback_periods=50), "callback"),  # the card delivers nothing
        (WAS, replace(HEALTHY, callback_periods=50, periods_heard=50, state="Degraded"), None),  # it knows
        (WAS, replace(HEALTHY, periods_heard=50), "heard"),  # delivered but never heard
        (WAS, replace(HEALTHY, rounds=100, state="Degraded"), "rounds"),  # Degraded excuses the card, not the loop
        (PLAYING, PLAYED_ON, None),
        (PLAYING, replace(PLAYED_ON, playout_samples=16000), "playout"),  # a stuck gate
        (PLAYING, replace(PLAYED_ON, playout_samples=16000, underrun_samples=800), None),  # waiting for speech
        (PLAYING, replace(PLAYED_ON, playout_samples=16000, state="Paused"), None),  # paused on a hint
        (PLAYING, replace(PLAYED_ON, playout_samples=320), None),  # a new epoch: its cursor began again
        (PLAYING, replace(PLAYED_ON, playout_samples=None), None),  # it ended
        (WAS, replace(HEALTHY, playout_samples=0), None),  # it began
    ],
)
def test_the_rule_pings_only_while_the_loop_the_callback_and_the_playout_cursor_advance(
    was: Beat, now: Beat, withheld: str | None
) -> None:
    assert withheld_because(was, now) == (REASONS[withheld] if withheld else None)


def test_the_first_failing_condition_is_named() -> None:
    assert withheld_because(WAS, WAS) == "the FSM loop ran no round"


def test_a_withheld_ping_is_explained_once_until_the_reason_changes_or_pings_resume() -> None:
    watchdog = Watchdog(WAS)
    frozen = replace(HEALTHY, callback_periods=50)
    verdicts = [
        watchdog.check(HEALTHY),
        watchdog.check(replace(frozen, at_s=1.0, rounds=300, periods_heard=150, callback_periods=100)),
        watchdog.check(replace(frozen, at_s=1.5, rounds=400, periods_heard=150, callback_periods=100)),
        watchdog.check(replace(frozen, at_s=2.0, rounds=400, periods_heard=150, callback_periods=100)),
        watchdog.check(replace(HEALTHY, at_s=2.5, rounds=500, periods_heard=200, callback_periods=200)),
    ]
    assert [v.ping for v in verdicts] == [True, False, False, False, True]
    assert [v.say for v in verdicts] == [
        None,
        "watchdog: not pinging systemd: the audio callback delivered no period (last ping 0.5 s ago, Idle)",
        None,  # the same reason: said once
        "watchdog: not pinging systemd: the FSM loop ran no round (last ping 1.5 s ago, Idle)",
        "watchdog: pinging systemd again",
    ]


@pytest.mark.parametrize(
    ("environ", "interval_s"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": ""}, None),
        ({"WATCHDOG_USEC": "1000000"}, 0.5),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "4242"}, 10.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
    ],
)
def test_the_watchdog_interval_is_half_of_watchdog_usec_for_this_process(
    environ: dict[str, str], interval_s: float | None
) -> None:
    assert watchdog_interval_s(environ, pid=4242) == interval_s


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"WATCHDOG_USEC": "1s"}, "WATCHDOG_USEC must be a positive whole number of microseconds, got '1s'"),
        ({"WATCHDOG_USEC": "0"}, "WATCHDOG_USEC must be a positive whole number of microseconds, got '0'"),
        ({"WATCHDOG_USEC": "-5"}, "WATCHDOG_USEC must be a positive whole number of microseconds, got '-5'"),
        ({"WATCHDOG_USEC": "5", "WATCHDOG_PID": "me"}, "WATCHDOG_PID must be a process id, got 'me'"),
    ],
)
def test_a_bad_watchdog_environment_is_a_one_line_error(environ: dict[str, str], message: str) -> None:
    with pytest.raises(UserError) as raised:
        watchdog_interval_s(environ, pid=4242)
    assert raised.value.message.startswith(message)


# ------------------------------------------------------------------------------------------ sd_notify messages


@pytest.mark.parametrize(
    ("state", "text"),
    [
        (Idle(), "Idle"),
        (Muted(), "Muted"),
        (Listening(turn=3, opened_at_sample=0), "Listening (turn 3)"),
        (
            Degraded("cannot open the sound card", attempt=2),
            "Degraded: cannot open the sound card (reopening the sound card, attempt 2)",
        ),
    ],
)
def test_status_names_the_state_its_turn_and_why_it_is_degraded(state: State, text: str) -> None:
    assert status_text(state) == text


def test_a_message_is_one_assignment_per_line_whatever_the_values_hold() -> None:
    assert ready_message(Idle()) == "READY=1\nSTATUS=Idle"
    assert notify_message(("STATUS", "Degraded: no\ndevice\n\nWATCHDOG=1")) == "STATUS=Degraded: no device WATCHDOG=1"
    long = notify_message(("STATUS", "x" * 1000))
    assert len(long) == len("STATUS=") + MAX_VALUE_CHARS and long.endswith("…")


def test_without_notify_socket_nothing_is_sent_and_systemd_python_is_not_needed() -> None:
    sent: list[str] = []
    warned: list[str] = []
    quiet = Notifier({}, warned.append, send=sent.append)
    quiet.send("READY=1")
    assert (quiet.enabled, sent, warned) == (False, [], [])
    told = Notifier({"NOTIFY_SOCKET": "/run/x"}, warned.append, send=sent.append)
    told.send("READY=1")
    assert (told.enabled, sent, warned) == (True, ["READY=1"], [])


# ------------------------------------------------------------------------------------------ the environment


@pytest.mark.parametrize(
    ("value", "faults"),
    [
        ("", NO_FAULTS),
        ("freeze-fsm-after-s=2", Faults(freeze_fsm_after_s=2.0)),
        ("stop-audio-callback-after-s=0.5", Faults(stop_audio_callback_after_s=0.5)),
        (" freeze-fsm-after-s=5 , stop-audio-callback-after-s=2 ", Faults(5.0, 2.0)),
        ("hearing-raises-after-s=1", Faults(hearing_raises_after_s=1.0)),
    ],
)
def test_spine_fault_names_when_each_fault_strikes(value: str, faults: Faults) -> None:
    assert faults_from_environment({"SPINE_FAULT": value}) == faults


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("freeze", "SPINE_FAULT: unknown fault 'freeze' (test-only; known: freeze-fsm-after-s=SECONDS, "
                   "stop-audio-callback-after-s=SECONDS, hearing-raises-after-s=SECONDS)"),
        ("freeze-fsm-after-s=2,freeze-fsm-after-s=3", "SPINE_FAULT: freeze-fsm-after-s is given twice"),
        ("freeze-fsm-after-s=soon", "SPINE_FAULT: freeze-fsm-after-s needs seconds from 0 to 3600 "
                                    "(e.g. freeze-fsm-after-s=2), got 'soon'"),
        ("freeze-fsm-after-s=-1", "SPINE_FAULT: freeze-fsm-after-s needs seconds from 0 to 3600 "
                                  "(e.g. freeze-fsm-after-s=2), got '-1'"),
        ("stop-audio-callback-after-s=nan", "SPINE_FAULT: stop-audio-callback-after-s needs seconds from 0 to "
                                            "3600 (e.g. stop-audio-callback-after-s=2), got 'nan'"),
        ("freeze-fsm-after-s", "SPINE_FAULT: freeze-fsm-after-s needs seconds from 0 to 3600 "
                               "(e.g. freeze-fsm-after-s=2), got ''"),
    ],
)  # fmt: skip
def test_a_bad_spine_fault_is_a_one_line_error(value: str, message: str) -> None:
    with pytest.raises(UserError) as raised:
        faults_from_environment({"SPINE_FAULT": value})
    assert raised.value.message == message


@pytest.mark.parametrize(
    ("value", "is_stderr"),
    [("8:1234", True), ("8:1235", False), ("9:1234", False), ("", False), (None, False), ("8-1234", False)],
)
def test_journal_stream_counts_only_while_stderr_is_that_stream(value: str | None, is_stderr: bool) -> None:
    assert journal_stream_is_stderr(value, stderr_device=8, stderr_inode=1234) is is_stderr


def test_the_journal_gets_every_line_with_its_fields_stderr_only_warnings() -> None:
    sent: list[tuple[str, dict[str, str]]] = []
    journal = ServiceLog({}, journal_send=lambda message, **fields: sent.append((message, fields)))
    journal.info("Listening (turn 1) on WakeDetected", STATE="Listening", TURN="1")
    journal.warning("watchdog: not pinging systemd")
    assert journal.to_journal
    assert sent == [
        (
            "Listening (turn 1) on WakeDetected",
            {"PRIORITY": "6", "SYSLOG_IDENTIFIER": "spine", "STATE": "Listening", "TURN": "1"},
        ),
        ("watchdog: not pinging systemd", {"PRIORITY": "4", "SYSLOG_IDENTIFIER": "spine"}),
    ]
    read_end, write_end = os.pipe()
    try:
        terminal = ServiceLog({}, stderr_fd=write_end)
        terminal.info("Listening (turn 1) on WakeDetected", STATE="Listening", TURN="1")
        terminal.warning("watchdog: not pinging systemd")
        os.close(write_end)
        assert not terminal.to_journal
        assert os.read(read_end, 4096) == b"spine: watchdog: not pinging systemd\n"
    finally:
        os.close(read_end)


# ------------------------------------------------------------------------------------------ real-time priority


def test_a_refused_real_time_priority_says_how_to_allow_it() -> None:
    assert describe_realtime(RealtimeOutcome(10, 0)) == ("info", "audio callback thread runs at SCHED_FIFO priority 10")
    level, line = describe_realtime(RealtimeOutcome(10, errno.EPERM))
    assert level == "warning"
    assert line.startswith("SCHED_FIFO refused (EPERM): the audio callback runs at normal priority; allow it with ")
    assert "LimitRTPRIO=10" in line


def test_asking_for_real_time_priority_reports_what_the_thread_got() -> None:
    """On a thread of its own (the test's thread keeps its policy): granted means SCHED_FIFO at that priority."""
    got: list[tuple[RealtimeOutcome, int, int]] = []

    def ask() -> None:
        outcome = ask_for_realtime(3)
        got.append((outcome, os.sched_getscheduler(0), os.sched_getparam(0).sched_priority))

    thread = threading.Thread(target=ask)
    thread.start()
    thread.join()
    outcome, policy, priority = got[0]
    if outcome.error == 0:
        assert (policy, priority) == (os.SCHED_FIFO, 3)
    else:
        assert outcome.error == errno.EPERM and policy == os.SCHED_OTHER  # not root, no RLIMIT_RTPRIO


# ------------------------------------------------------------------------------------------ the injected stall


def test_a_stalled_callback_touches_neither_the_rings_nor_its_counters() -> None:
    callback = DuplexCallback.with_rings(1 << 12, fade_samples=8, period_samples=160)
    stream = DuplexStream(callback, 16000, 160, DeviceChoice(None, None))
    mic = np.full(160, 1000, np.int16)
    out = np.full(160, 7, np.int16)  # PortAudio's buffer, holding whatever it held
    stream._on_period(mic, out, 0)
    stream.stall_at(0)  # from now on
    out[:] = 7
    stream._on_period(mic, out, 0)
    assert not out.any()  # silence (and the callback returns normally: PortAudio carries on)
    assert (callback.periods, stream.calls, callback.capture.available()) == (1, 1, 160)
    assert stream.stalled_at_ns > 0


# ------------------------------------------------------------------------------------------ the service thread


def test_the_service_thread_announces_ready_and_each_change_of_state_once_in_order() -> None:
    sent: list[str] = []
    lines: list[tuple[str, dict[str, str]]] = []
    states: list[State] = [Idle()]
    service = ServiceThread(
        Notifier({"NOTIFY_SOCKET": "/run/test"}, lambda _line: None, send=sent.append),
        ServiceLog({}, journal_send=lambda message, **fields: lines.append((message, fields))),
        None,
        lambda at_s, state: replace(WAS, at_s=at_s, state=state),
        lambda: states[-1],
    )  # started below: until then everything queues, so the order of what it sends is known

    def step(state: State, event: object) -> None:
        states.append(state)
        service.observe(0, event, type(state).__name__, ())  # type: ignore[arg-type]

    step(Idle(), Started())  # no change: nothing
    service.ready(Idle())
    step(Listening(turn=1, opened_at_sample=0), WAKE)
    step(Listening(turn=1, opened_at_sample=0), WAKE)  # the same state again: nothing
    step(Muted(), MuteChanged(True, "SIGUSR1"))
    step(Degraded("gone", attempt=1), AudioDeviceLost("gone"))
    step(Degraded("gone again", attempt=2), AudioDeviceLost("gone again"))  # another attempt: a new status
    service.stopping()
    service.start().close(10)
    assert sent[0] == "STOPPING=1"  # at once, from the caller's thread
    assert sent[1:] == [
        "READY=1\nSTATUS=Idle",
        "STATUS=Listening (turn 1)",
        "STATUS=Muted",
        "STATUS=Degraded: gone (reopening the sound card, attempt 1)",
        "STATUS=Degraded: gone again (reopening the sound card, attempt 2)",
    ]
    assert [(message, fields.get("STATE"), fields.get("TURN")) for message, fields in lines] == [
        ("Listening (turn 1) on WakeDetected", "Listening", "1"),
        ("Muted on MuteChanged", "Muted", None),
        ("Degraded: gone (reopening the sound card, attempt 1) on AudioDeviceLost", "Degraded", None),
        ("Degraded: gone again (reopening the sound card, attempt 2) on AudioDeviceLost", "Degraded", None),
    ]
