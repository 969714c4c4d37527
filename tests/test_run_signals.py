"""Issue 11: `spine run` has a defined outcome for a signal at any moment, and for a `--log` that is a directory.

* SIGINT or SIGTERM at any time after its handlers are in place (while the slow imports run, while the models
  load, while the stream opens, with the loop running): exit 0 within the stated bound, no traceback, and an
  event log whose last step is `StopRequested` naming the signal (the slow test, on a private PulseAudio null
  sink, and `card.run` stopped between two models without audio);
* the handlers only record (no exception in arbitrary code, no lock); the stop guard ends a stop that hangs;
* `ThreadRunner.stop` cancels every job, joins with a deadline, and hands back a stuck one as a leak, which
  the daemon logs as `JobLeaked` after the stop;
* `--log DIR` is a one-line error, exit 2.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from device.cli import main
from device.config import Config, core_config, load_config
from device.core import commands as cmd
from device.core import events as ev
from device.core.states import initial
from device.replay import replay
from device.runtime.daemon import Daemon
from device.runtime.eventlog import EventLog, read_log
from device.runtime.job_threads import ThreadRunner
from device.runtime.jobs import Job, Leak, Output
from device.runtime.loop import Inbox, SpineLoop
from device.runtime.signals import EXIT_STUCK, STOP_BOUND_S, RunSignals, StopBeforeStart, StopGuard
from tests.pulse import pulse_server

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


@pytest.fixture
def own_handlers() -> Iterator[None]:
    """The test installs `spine run`'s handlers in pytest's own process: put pytest's back afterwards."""
    saved = {number: signal.getsignal(number) for number in HANDLED}
    try:
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


# ---------------------------------------------------------------------------------------------- the handlers


def test_the_handlers_only_record_what_the_signals_asked(own_handlers: None) -> None:
    signals = RunSignals().install()
    os.kill(os.getpid(), signal.SIGUSR1)
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGINT)  # a second stop: the first one names it
    os.kill(os.getpid(), signal.SIGUSR2)
    assert signals.stop_reason == "SIGTERM"
    assert list(signals.mute_requests) == [(True, "SIGUSR1"), (False, "SIGUSR2")]
    with pytest.raises(StopBeforeStart, match="SIGTERM"):
        signals.raise_if_stopped()


def test_the_stop_guard_ends_a_stop_that_hangs_and_leaves_one_that_ends(capfd: pytest.CaptureFixture[str]) -> None:
    exits: list[int] = []
    exited = threading.Event()

    def exit_now(code: int) -> None:
        exits.append(code)
        exited.set()

    hung = StopGuard(bound_s=0.05, exit_now=exit_now)
    hung.arm("closing the sound card")
    assert exited.wait(5)
    assert exits == [EXIT_STUCK]
    said = capfd.readouterr().err
    assert said == "spine: stopping took more than 0.05 s (stuck in closing the sound card); exiting now\n"

    ended = StopGuard(bound_s=5, exit_now=exit_now)
    ended.arm("the stop")
    ended.done()
    assert ended._thread is not None
    ended._thread.join(5)
    assert not ended._thread.is_alive() and exits == [EXIT_STUCK]


# ---------------------------------------------------------------------------------------------- the jobs at a stop


def test_stop_cancels_every_job_and_hands_back_a_stuck_one_as_a_leak_that_posts_nothing_more() -> None:
    posted: list[ev.Event] = []
    release = threading.Event()
    in_native = threading.Event()

    def stuck() -> Generator[Output, None, None]:  # like native code: neither looks at the flag nor can be aborted
        in_native.set()
        release.wait(10)
        yield Output(ev.TranscriptReady(1, "too late", 0), 0)

    replying = threading.Event()

    def paced() -> Generator[Output, None, None]:  # a streaming reply waiting for its next token: ends at once
        replying.set()
        yield Output(ev.ReplyDelta(1, "never"), 16000 * 60, pace=True)

    runner = ThreadRunner(posted.append, 16000, watchdog=False)
    runner.start(Job(1, "asr", stuck), 0)
    runner.start(Job(1, "reply", paced), 0)
    runner.start(Job(2, "asr", stuck), 0)  # queued behind the stuck one: dropped, never runs
    # Both running before the stop (under load a worker may not have begun its job yet: a job still queued at
    # the stop is dropped without an acknowledgement, which a fresh-clone run under stress-ng met).
    assert in_native.wait(5) and replying.wait(5)
    began = time.monotonic()
    leaks = runner.stop(join_timeout_s=0.2)
    assert time.monotonic() - began < 2  # the deadline, not the stuck job, decides
    assert [(leak.turn, leak.kind) for leak in leaks] == [(1, "asr")]
    assert isinstance(leaks[0], Leak) and runner.leaks == 1
    release.set()
    # Let the abandoned thread run to its end (joined, not slept on): it posts nothing, not even an acknowledgement.
    for worker in [t for t in threading.enumerate() if t.name.startswith("spine-asr")]:
        worker.join(5)
        assert not worker.is_alive()
    assert posted == [ev.JobCancelled(1, "reply")]


class Recorder:
    def __init__(self) -> None:
        self.commands: list[cmd.Command] = []

    def execute(self, commands: tuple[cmd.Command, ...], now: int) -> None:
        self.commands += commands

    def playback_ended(self, epoch: int) -> None:
        pass


def test_a_job_stuck_at_the_stop_is_logged_as_job_leaked_after_the_stop(tmp_path: Path) -> None:
    """`Daemon.finish` on the parts it uses: the stop first, then the leaks (the watchdog's and the stop's)."""

    class Parts:
        pass

    release = threading.Event()
    running = threading.Event()

    def stuck() -> Generator[Output, None, None]:
        running.set()
        release.wait(10)
        yield Output(ev.TranscriptReady(3, "too late", 0), 0)

    parts = Parts()
    log_path = tmp_path / "events.jsonl"
    log = EventLog(log_path, core_config(Config()))
    inbox = Inbox()
    inbox.post(ev.JobLeaked(2, "reply", 512.0))  # posted by the watchdog, not yet stepped
    inbox.post(ev.JobCancelled(2, "asr"))  # an acknowledgement: not news after the stop
    runner = ThreadRunner(inbox.post, 16000, watchdog=False)
    runner.start(Job(3, "tts", stuck), 0)
    assert running.wait(5)
    vars(parts).update(
        inbox=inbox,
        runner=runner,
        log=log,
        loop=SpineLoop(initial(core_config(Config())), log, Recorder()),
        realtime=None,  # the local backend: no realtime call to close
    )
    daemon = cast(Daemon, parts)
    Daemon.request_stop(daemon, 100, "SIGTERM")
    began = time.monotonic()
    Daemon.finish(daemon, 100)
    release.set()
    assert time.monotonic() - began < 5
    steps = read_log(log_path).steps
    assert [type(step.event).__name__ for step in steps] == ["StopRequested", "JobLeaked", "JobLeaked"]
    assert [(e.turn, e.job) for e in (s.event for s in steps[1:]) if isinstance(e, ev.JobLeaked)] == [
        (2, "reply"),
        (3, "tts"),
    ]
    assert vars(parts)["leaked_threads"] is True


# ---------------------------------------------------------------------------------------------- start-up


def config_for(tmp_path: Path, models_dir: Path, audio: str = "") -> Path:
    path = tmp_path / "run.toml"
    path.write_text(f'[models]\ndir = "{models_dir}"\n{audio}', encoding="utf-8")
    return path


def test_a_stop_while_the_models_load_ends_the_start_up_between_two_models_and_is_logged(
    tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from device.runtime.card import run

    class StopWhileLoading(RunSignals):
        """SIGTERM arrives while the voice models load: seen before the wake word's load."""

        calls = 0

        def raise_if_stopped(self) -> None:
            self.calls += 1
            if self.calls == 2:
                self.request_stop("SIGTERM")
            super().raise_if_stopped()

    signals = StopWhileLoading()
    log = tmp_path / "events.jsonl"
    assert run(load_config(config_for(tmp_path, models_dir)), log, signals) == 0
    assert signals.calls == 2  # the voice models loaded, then the stop was seen: nothing more loaded
    assert "spine: stopped by SIGTERM while loading the models" in capsys.readouterr().out
    loaded = read_log(log)
    assert [(s.event, s.state, s.commands) for s in loaded.steps] == [(ev.StopRequested("SIGTERM"), "Stopping", ())]
    assert replay(log)[1] == []


def test_spine_run_with_a_directory_as_log_is_a_one_line_error(
    tmp_path: Path, own_handlers: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--log", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"spine: error: {tmp_path}: --log is a directory: give a file path (e.g. {tmp_path}/events.jsonl)\n"


# ---------------------------------------------------------------------------------------------- real: any time

SIGNAL_TIMES_S = (0.0, 0.2, 0.5, 1.0, 1.5, 1.8, 2.5, 4.0)
"""After `spine run`'s handlers are in place: in the slow imports, the model loading, the stream's opening and
the start-up sound (the issue's hang was at 1.8 s), and with the loop running."""
EXIT_WITHIN_S = STOP_BOUND_S + 1.5
"""The stated bound: once the stop begins the process is over within `STOP_BOUND_S`, and it begins at the loop's
next round (a few ms), or while starting once the import or model load under way returns (measured <= 1.4 s)."""


def catches(pid: int, number: int) -> bool:
    """Whether the process has a handler for signal `number` (the kernel's SigCgt mask)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except FileNotFoundError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (number - 1)))


def handlers_installed(pid: int) -> bool:
    """`spine run`'s own handlers are in place: SIGUSR1 (mute) is caught, which only they catch (the entry
    point's early handlers take SIGINT and SIGTERM alone)."""
    return catches(pid, signal.SIGUSR1)


def wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    tick = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        tick.wait(0.002)  # a real process on a real clock: this waits on it, it does not pace a unit test


def events_of(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line)["event"] for line in log.read_text(encoding="utf-8").splitlines() if '"event"' in line]


def signal_spine_run(config: Path, log: Path, env: dict[str, str], number: int, at_s: float) -> tuple[str, str, float]:
    """Starts `spine run`, sends `number` `at_s` after its handlers are in place, and waits for its exit:
    (stdout, stderr, seconds from the signal to the exit); an error if it has not exited `EXIT_WITHIN_S` later."""
    daemon = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "device", "run", "--config", str(config), "--log", str(log)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: handlers_installed(daemon.pid), 10)
        threading.Event().wait(at_s)
        daemon.send_signal(number)
        sent = time.monotonic()
        try:
            out, err = daemon.communicate(timeout=EXIT_WITHIN_S)
        except subprocess.TimeoutExpired:
            daemon.send_signal(signal.SIGABRT)  # -X faulthandler: every thread's stack on stderr, then the end
            out, err = daemon.communicate()
            raise AssertionError(f"still running {EXIT_WITHIN_S} s after the signal; where:\n{err}") from None
        took = time.monotonic() - sent
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
    assert daemon.returncode == 0, f"exit {daemon.returncode}: {out!r} {err!r}"
    return out, err, took


@pytest.mark.slow
def test_spine_run_stops_cleanly_whenever_sigint_or_sigterm_comes(tmp_path: Path, models_dir: Path) -> None:
    config = config_for(tmp_path, models_dir, '[audio]\ninput_device = "pulse"\noutput_device = "pulse"\n')
    outcomes: list[str] = []
    with pulse_server() as env:
        for number in (signal.SIGINT, signal.SIGTERM):
            for at_s in SIGNAL_TIMES_S:
                name = signal.Signals(number).name
                log = tmp_path / f"events-{name}-{at_s}.jsonl"
                out, err, took = signal_spine_run(config, log, env, number, at_s)
                what = f"{name} at {at_s} s (exit 0 after {took:.2f} s): {out!r} {err!r}"
                assert err == "", what  # no traceback, no message: a clean stop
                events = events_of(log)
                assert events and events[-1] == {"type": "StopRequested", "reason": name}, what
                assert [e["type"] for e in events].count("StopRequested") == 1, what
                assert replay(log)[1] == [], what
                outcomes.append(f"{name} {at_s} s: exit 0 after {took:.2f} s, {len(events)} events, {out.strip()[:40]}")
    print("\n".join(outcomes))


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_while_the_command_line_is_still_importing_ends_it_with_one_line(
    tmp_path: Path, number: int
) -> None:
    """Before `spine run` takes the signals over (the command line's imports take 0.2 s here, seconds on a loaded
    Pi), the entry point's handlers end the process with one line and exit 0: nothing has started, no traceback."""
    log = tmp_path / "events.jsonl"
    daemon = subprocess.Popen(
        [sys.executable, "-m", "device", "run", "--log", str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: catches(daemon.pid, signal.SIGTERM), 10)
        daemon.send_signal(number)
        out, err = daemon.communicate(timeout=EXIT_WITHIN_S)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
    name = signal.Signals(number).name
    assert daemon.returncode == 0, (out, err)
    assert "Traceback" not in err and "Error" not in err, err
    # Almost always the early handler's line; on a machine quick enough to be past the imports, `spine run`'s own
    # stop (its log then ends with the stop).
    assert err == f"spine: stopped by {name} before it started\n" or (
        err == "" and events_of(log)[-1] == {"type": "StopRequested", "reason": name}
    ), (out, err)
