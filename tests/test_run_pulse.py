"""`spine run` on a PulseAudio null sink survives its sound server vanishing and coming back (a simulated
unplug and replug), with the events in its log - and stops cleanly on SIGTERM."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from device.replay import replay
from tests.pulse import _run, pulse_server

pytestmark = pytest.mark.slow


def log_types(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [
        json.loads(line)["event"]["type"]
        for line in path.read_text(encoding="utf-8").splitlines()
        if '"event"' in line and line.endswith("}")
    ]


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str | Callable[[], str]) -> None:
    """`what` names the wait in the failure; a callable is asked then (to say what the run had come to)."""
    deadline = time.monotonic() + timeout_s
    tick = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what if isinstance(what, str) else what()}"
        tick.wait(0.05)  # a real daemon on a real clock: this waits on it, it does not pace a unit test


def start_spine_run(config: Path, log: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """`spine run` in its own process on the test's sound server; returns once its models are loaded and the
    stream is open."""
    daemon = subprocess.Popen(
        [sys.executable, "-m", "device", "run", "--config", str(config), "--log", str(log)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert daemon.stdout is not None
    if "running" not in daemon.stdout.readline():  # models loaded, stream open
        daemon.kill()
        raise AssertionError(f"spine run did not start: {daemon.communicate()[1]}")
    return daemon


def test_spine_run_survives_the_sound_server_going_away_and_coming_back(tmp_path: Path, models_dir: Path) -> None:
    with pulse_server() as env:
        runtime_dir = env["XDG_RUNTIME_DIR"]
        config = tmp_path / "run.toml"
        config.write_text(f'[models]\ndir = "{models_dir}"\n[audio]\ninput_device = "pulse"\noutput_device = "pulse"\n')
        log = tmp_path / "events.jsonl"
        daemon = start_spine_run(config, log, env)
        try:
            _run("stop", runtime_dir)  # the "device" disappears
            wait_for(lambda: "AudioDeviceLost" in log_types(log), 15, "AudioDeviceLost")
            started = _run("start", runtime_dir)  # and comes back
            assert started.returncode == 0, started.stderr
            wait_for(lambda: "AudioDeviceRestored" in log_types(log), 30, "AudioDeviceRestored")
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=20) == 0, daemon.stderr.read() if daemon.stderr else ""
        finally:
            if daemon.poll() is None:
                daemon.kill()
    types = log_types(log)
    assert types[-1] == "StopRequested"
    lost = types.index("AudioDeviceLost")
    assert "AudioDeviceRestored" in types[lost:]
    steps, mismatches = replay(log)
    assert mismatches == []
    assert [s.state for s in steps][-2:] == ["Idle", "Stopping"]


def outcomes(path: Path) -> list[dict[str, object]]:
    """The decision lines of a log: each with its state and commands."""
    return [
        json.loads(line)
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith('{"t"') and '"state"' in line and line.endswith("}")
    ]


def test_spine_run_answers_a_spoken_request_and_never_interrupts_itself_at_0_db_echo(
    tmp_path: Path, models_dir: Path
) -> None:
    """The null sink's monitor is the mic: the assistant's voice reaches it at full level (0 dB), the worst
    coupling a device can have. The echo canceller must keep the story from interrupting itself, at 48 kHz."""
    with pulse_server() as env:
        config = tmp_path / "run.toml"
        config.write_text(
            f'[models]\ndir = "{models_dir}"\n[audio]\ninput_device = "pulse"\noutput_device = "pulse"\n'
            "card_rate_hz = 48000\n"
        )
        ask = tmp_path / "ask.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(ask), "Hey Jarvis. Tell me a story."], check=True)
        log = tmp_path / "events.jsonl"
        daemon = start_spine_run(config, log, env)
        try:
            # Spine is ready when its start-up sound has played (at 0 dB coupling it masks a wake word said over it).
            wait_for(lambda: "PlaybackDrained" in log_types(log), 15, "the start-up sound to end")
            subprocess.run(["paplay", "-d", "spine_null", str(ask)], env={**os.environ, **env}, check=True)
            wait_for(lambda: "TtsChunkReady" in log_types(log), 30, "the answer to be synthesised")
            began = time.monotonic()
            wait_for(lambda: time.monotonic() - began > 20, 25, "20 s of the story")
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=20) == 0, daemon.stderr.read() if daemon.stderr else ""
        finally:
            if daemon.poll() is None:
                daemon.kill()
    text = log.read_text(encoding="utf-8")
    # The request was understood and answered with the story. Not the exact words: whisper tiny gives espeak's
    # "Tell me a story." as "Tell the story." now and then, depending on where the stream's timing puts the
    # utterance's window (speech-to-text accuracy is measured by `spine bench latency`, not here).
    events = [json.loads(line)["event"] for line in text.splitlines() if '"TranscriptReady"' in line]
    transcripts = [str(event["text"]) for event in events if event["type"] == "TranscriptReady"]
    assert transcripts and "story" in transcripts[0].lower(), transcripts
    states = [str(o["state"]) for o in outcomes(log)]
    speaking_from = states.index("Speaking")
    # Speaking until the stop: never paused, cut, or hearing its own voice as the user.
    assert set(states[speaking_from:-1]) == {"Speaking"}, sorted(set(states[speaking_from:]))
    assert '"type":"EchoCancellerChanged","converged":true' in text.replace(", ", ",")


def fill(disk: Path) -> Path:
    """Fills the file system of `disk` to the last byte with one file; returns it."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        block = b"\0" * 4096
        try:
            while True:
                out.write(block)
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
    return filler


@contextlib.contextmanager
def small_disk(where: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted at `where` (the test runs as root, as CI does)."""
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_spine_run_goes_on_while_the_disk_of_its_log_is_full_and_the_log_ends_whole(
    tmp_path: Path, models_dir: Path
) -> None:
    """The disk of the event log fills up mid-run: spine goes on (it hears mute and unmute), says once how to fix
    it, holds the log in memory, writes it all once there is room again and stops cleanly: the log replays."""
    with pulse_server() as env, small_disk(tmp_path / "disk") as disk:
        config = tmp_path / "run.toml"
        config.write_text(f'[models]\ndir = "{models_dir}"\n[audio]\ninput_device = "pulse"\noutput_device = "pulse"\n')
        log = disk / "events.jsonl"
        daemon = start_spine_run(config, log, env)
        said: list[str] = []
        assert daemon.stderr is not None
        reader = threading.Thread(target=lambda: said.extend(daemon.stderr or ()), daemon=True)
        reader.start()
        try:
            wait_for(lambda: "PlaybackDrained" in log_types(log), 15, "the start-up sound to end")
            filler = fill(disk)
            # Mute and unmute, steps whose lines the disk refuses once the log's last page is full (a file system
            # allocates whole pages: the first few hundred bytes may still fit).
            toggles = 0
            while not any("cannot write the event log" in line for line in said):
                assert toggles < 20, f"no warning after {toggles} steps on a full disk: {said}"
                daemon.send_signal(signal.SIGUSR1 if toggles % 2 == 0 else signal.SIGUSR2)
                toggles += 1
                with contextlib.suppress(AssertionError):
                    wait_for(lambda: any("cannot write the event log" in line for line in said), 1, "the warning")
            filler.unlink()
            # The next step writes everything held. One signal at a time: two pending ones arrive lowest first.
            daemon.send_signal(signal.SIGUSR2 if toggles % 2 else signal.SIGUSR1)
            toggles += 1
            wait_for(lambda: any("written again, nothing lost" in line for line in said), 10, "the catch-up")
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=20) == 0, "".join(said)
        finally:
            if daemon.poll() is None:
                daemon.kill()
        reader.join(timeout=5)
        assert sum("cannot write the event log" in line for line in said) == 1, said
        assert "free space there or give --log on another disk" in "".join(said)
        types = log_types(log)
        assert types.count("MuteChanged") == toggles  # nothing lost while the disk was full
        assert types[-1] == "StopRequested"
        steps, mismatches = replay(log)  # every line there, in order: the chain holds and the core agrees
        assert mismatches == []
        assert [s.state for s in steps][-2:] == ["Muted" if toggles % 2 else "Idle", "Stopping"]
