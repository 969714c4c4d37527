"""`spine bench realstream`: `spine run` on a real PulseAudio stream, talked over by espeak-ng, with and without
a CPU load that provokes underruns.

The room (scripts/pulse-null-sink.sh start --room) keeps the assistant and the user apart while both reach the
mic at 0 dB: Spine plays into `spine_speaker` (the left channel of the stereo sink `spine_room`), the user's
voice goes into `spine_user` (the right channel), and Spine's mic `spine_mic` is the room's mono mix, left +
right at unity gain. One recording of the room's monitor (`parec`) therefore holds, sample-aligned, exactly what
Spine played (left) and exactly when the user spoke (right). Spine's event log says what it decided.

A conversation: the user asks "Hey Jarvis. Tell me a story.", and at `offset_s` after the story starts to sound
one talk-over is played ("Stop.", "Never mind.", "Hey Jarvis, stop.", "Hey Jarvis. What time is it?"). A
session is one `spine run` (its first answer is the first after start) with a few conversations; with `load`
`stress-ng --cpu 2` runs alongside for a bounded time and is always killed.

The measures and how the log is put on the recording's clock: device/bench/realstream_analysis.py; the
report: device/bench/realstream_report.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.bench.realstream_analysis import (
    FRAME_SAMPLES,
    KINDS,
    OFFSETS_S,
    REQUEST,
    SOUND_LEVEL,
    Injection,
    Recording,
    analyse_directory,
)
from device.bench.realstream_report import result_of
from device.errors import UserError
from device.rates import SPINE_RATE_HZ as RATE_HZ

QUIET_BEFORE_S = 1.0
"""A conversation starts after Spine is idle and its speaker silent this long."""
START_GRACE_S = 3.0
"""The first conversation waits this long after `spine run` says it is running: its start-up sound begins a
moment later, and a request spoken before it would be talked over by it (measured: 9 of 10 first requests
went unanswered when the bench asked at once)."""
RESCUE_AFTER_S = 8.0
"""A story still playing this long after a talk-over ended was missed (a wake-word question is answered well
within it): mute and unmute Spine to end it (SIGUSR1,
SIGUSR2) instead of waiting out 48 s of story. The mute is excluded from the decisions measured."""
SETTLE_TIMEOUT_S = 40.0
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pulse-null-sink.sh"


@dataclass(frozen=True)
class TalkOver:
    offset_s: float
    text: str


@dataclass(frozen=True)
class Session:
    load: bool
    talk_overs: tuple[TalkOver, ...]


def full_plan(sessions_per_setting: int = 5) -> list[Session]:
    """Every (offset, kind) pair once per load setting: session s talks over at offset s with all four kinds,
    its first conversation (the first answer after start) with kind s mod 4, so each offset and every kind
    meets a cold start."""
    plan: list[Session] = []
    for load in (False, True):
        for s in range(sessions_per_setting):
            offset = OFFSETS_S[s % len(OFFSETS_S)]
            kinds = [KINDS[(s + p) % len(KINDS)] for p in range(len(KINDS))]
            plan.append(Session(load, tuple(TalkOver(offset, k) for k in kinds)))
    return plan


def short_plan() -> list[Session]:
    """The CI setting: four conversations, one under load, cold and warm answers, every kind."""
    return [
        Session(False, (TalkOver(0.7, "Stop."), TalkOver(1.5, KINDS[3]), TalkOver(3.0, "Never mind."))),
        Session(True, (TalkOver(1.5, "Hey Jarvis, stop."),)),
    ]


# ----------------------------------------------------------------------------------------------------------
# The room, the recorder, the daemon, the load: processes this bench starts and always ends.


@contextmanager
def room_server() -> Iterator[dict[str, str]]:
    """A private PulseAudio with the room, in a fresh runtime directory; stopped afterwards."""
    if shutil.which("pulseaudio") is None or shutil.which("parec") is None:
        raise UserError("pulseaudio and its tools are not installed: run scripts/setup.sh")
    runtime_dir = tempfile.mkdtemp(prefix="spine-rs-")  # short: the socket path must fit 108 bytes

    def script(*arguments: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "SPINE_PULSE_DIR": runtime_dir}
        return subprocess.run(["bash", str(SCRIPT), *arguments], env=env, capture_output=True, text=True,
                              timeout=30, check=False)  # fmt: skip

    try:
        started = script("start", "--room")
        if started.returncode != 0:
            raise UserError(f"could not start the PulseAudio room ({SCRIPT.name}): {started.stderr.strip()}")
        yield {
            "PULSE_SERVER": f"unix:{runtime_dir}/pulse/native",
            "PULSE_RUNTIME_PATH": f"{runtime_dir}/pulse",
            "XDG_RUNTIME_DIR": runtime_dir,
        }
    finally:
        script("stop")
        shutil.rmtree(runtime_dir, ignore_errors=True)


class Recorder:
    """`parec` of the room's monitor, stereo 16 kHz, read by a thread; the position is the room's clock."""

    def __init__(self, env: dict[str, str]) -> None:
        self._process = subprocess.Popen(
            ["parec", "-d", "spine_room.monitor", "--rate=16000", "--channels=2", "--format=s16le", "--raw",
             "--latency-msec=20"],
            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._data = bytearray()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="recorder", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        fd = self._process.stdout.fileno()
        while chunk := os.read(fd, 6400):
            with self._lock:
                self._data += chunk

    def position(self) -> int:
        with self._lock:
            return len(self._data) // 4

    def left(self, start: int) -> npt.NDArray[np.int16]:
        with self._lock:
            raw = bytes(self._data[max(start, 0) * 4 : len(self._data) // 4 * 4])
        return np.frombuffer(raw, dtype="<i2").reshape(-1, 2)[:, 0].astype(np.int16)

    def stop(self) -> Recording:
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._thread.join(timeout=5)
        with self._lock:
            raw = bytes(self._data[: len(self._data) // 4 * 4])
        return np.frombuffer(raw, dtype="<i2").reshape(-1, 2).astype(np.int16)


class LogTail:
    """The state Spine's event log last reached, read incrementally while it runs."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self.state = "Idle"  # the machine's first state; it logs nothing until its first event

    def poll(self) -> str:
        if not self._path.exists():
            return self.state
        with self._path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            if b'"state"' in line:
                self.state = str(json.loads(line)["state"])
        return self.state


@contextmanager
def spine_run(config: Path, log: Path, stderr_path: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """`spine run` in its own process group; yields once it says it is running, SIGTERM (then SIGKILL) after."""
    with stderr_path.open("w", encoding="utf-8") as stderr:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "device", "run", "--config", str(config), "--log", str(log)],
            env={**os.environ, **env, "OMP_WAIT_POLICY": "PASSIVE"}, stdout=subprocess.PIPE, stderr=stderr,
            text=True, start_new_session=True,
        )  # fmt: skip
        try:
            assert daemon.stdout is not None
            if "running" not in daemon.stdout.readline():
                raise UserError(f"spine run did not start; its stderr is in {stderr_path}")
            yield daemon
        finally:
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
                try:
                    daemon.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()


@contextmanager
def cpu_load(on: bool, bound_s: float) -> Iterator[None]:
    """`stress-ng --cpu 2` for at most `bound_s` (its own timeout), killed on the way out whatever happened."""
    if not on:
        yield
        return
    if shutil.which("stress-ng") is None:
        raise UserError("stress-ng is not installed: run scripts/setup.sh (or apt-get install stress-ng)")
    load = subprocess.Popen(
        ["stress-ng", "--cpu", "2", "--timeout", f"{max(1, round(bound_s))}s", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have ended on its own timeout
            os.killpg(load.pid, signal.SIGKILL)  # its own group: stress-ng and the workers it forked
        load.wait()


# ----------------------------------------------------------------------------------------------------------
# Running a session.


@dataclass
class SessionRun:
    load: bool
    directory: Path
    injections: list[Injection] = field(default_factory=list)
    running_at: int = 0
    """The recording position when `spine run` said it was running (the fallback log-to-recording mapping)."""
    rescues: list[int] = field(default_factory=list)
    unsettled: int = 0
    load_averages: list[float] = field(default_factory=list)
    """The machine's 1-minute load average before each conversation: what else competed for the cores."""
    """Conversations not started because Spine never went idle and quiet."""


def _sounds(frame: npt.NDArray[np.int16]) -> bool:
    return bool(frame.size) and int(np.max(np.abs(frame.astype(np.int32)))) > SOUND_LEVEL


def _first_sound(samples: npt.NDArray[np.int16]) -> int | None:
    for start in range(0, len(samples) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        if _sounds(samples[start : start + FRAME_SAMPLES]):
            return start
    return None


def _wait(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    tick = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            return False
        tick.wait(0.02)  # the room runs on its own clock; this only polls it
    return True


class Player:
    """One `pacat` stream into `spine_user` for the whole session: a clip written to it sounds within the stream's
    latency (30 ms), where a fresh `paplay` per clip took up to a second to start on a busy machine. Between clips
    the stream underruns and plays nothing; a clip written after that plays whole."""

    def __init__(self, env: dict[str, str]) -> None:
        self._process = subprocess.Popen(
            ["pacat", "--playback", "-d", "spine_user", "--rate=16000", "--channels=1", "--format=s16le",
             "--latency-msec=30"],
            env={**os.environ, **env}, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def play(self, samples: npt.NDArray[np.int16], recorder: Recorder) -> int:
        """Start `samples`; return the recording position they start at and come back once they have sounded."""
        assert self._process.stdin is not None
        started_at = recorder.position()
        self._process.stdin.write(samples.astype("<i2").tobytes())
        self._process.stdin.flush()
        _wait(
            lambda: recorder.position() >= started_at + len(samples) + FRAME_SAMPLES * 10, len(samples) / RATE_HZ + 10
        )
        return started_at

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _voice(text: str, directory: Path, gain_db: float) -> npt.NDArray[np.int16]:
    """`text` spoken by espeak-ng (a voice other than Spine's Piper), also kept as a WAV to listen to."""
    from device.sim.speech import synthesize

    samples = synthesize(text, "en-us", RATE_HZ, gain_db)
    path = directory / (re.sub(r"[^a-z]+", "_", text.lower()).strip("_") + ".wav")
    if not path.exists():
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RATE_HZ)
            out.writeframes(samples.tobytes())
    return samples


def run_session(
    session: Session, number: int, config: Path, out_dir: Path, gain_db: float, progress: Callable[[str], None]
) -> SessionRun:
    """One `spine run` with the session's conversations; writes recording.wav, events.jsonl and stderr.txt."""
    directory = out_dir / f"session-{number:02d}-{'load' if session.load else 'idle'}"
    directory.mkdir(parents=True, exist_ok=True)
    for stale in ("events.jsonl", "recording.wav", "stderr.txt"):
        (directory / stale).unlink(missing_ok=True)
    voices = out_dir / "voices"
    voices.mkdir(exist_ok=True)
    result = SessionRun(session.load, directory)
    log = directory / "events.jsonl"
    with room_server() as env:
        recorder = Recorder(env)
        player = Player(env)
        recording: Recording | None = None
        try:
            with spine_run(config, log, directory / "stderr.txt", env) as daemon:
                result.running_at = recorder.position()
                with cpu_load(session.load, 60 + 75 * len(session.talk_overs)):
                    tail = LogTail(log)
                    for index, talk in enumerate(session.talk_overs):
                        if not _settle(recorder, tail, daemon, result):
                            result.unsettled += len(session.talk_overs) - index
                            progress(f"  session {number}: Spine did not go idle; {result.unsettled} not run")
                            break
                        result.load_averages.append(round(os.getloadavg()[0], 2))
                        _conversation(index, talk, player, recorder, tail, voices, gain_db, result)
                        progress(f"  session {number} ({'load' if session.load else 'no load'}): "
                                 f"{talk.text!r} at {talk.offset_s} s done")  # fmt: skip
                    _settle(recorder, tail, daemon, result)
        finally:
            player.close()
            recording = recorder.stop()
    with wave.open(str(directory / "recording.wav"), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(RATE_HZ)
        out.writeframes(recording.tobytes())
    (directory / "injections.json").write_text(
        json.dumps({"running_at": result.running_at, "rescues": result.rescues, "unsettled": result.unsettled,
                    "load": session.load, "load_averages": result.load_averages,
                    "injections": [asdict(i) for i in result.injections]}, indent=1) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    return result


def _settle(recorder: Recorder, tail: LogTail, daemon: subprocess.Popen[str], run: SessionRun) -> bool:
    """Wait until Spine is idle and its speaker quiet for `QUIET_BEFORE_S`; end a story that outlived its
    talk-over by `RESCUE_AFTER_S` with a mute and unmute."""
    began = time.monotonic()
    rescued = False
    quiet = round(QUIET_BEFORE_S * RATE_HZ)

    def settled() -> bool:
        nonlocal rescued
        at = recorder.position()
        warm = at - run.running_at >= round(START_GRACE_S * RATE_HZ)
        if warm and tail.poll() == "Idle" and at > quiet and _first_sound(recorder.left(at - quiet)) is None:
            return True
        if not rescued and time.monotonic() - began > RESCUE_AFTER_S and tail.state not in ("Idle", "Listening"):
            rescued = True
            run.rescues.append(at)
            daemon.send_signal(signal.SIGUSR1)  # mute: ends the turn and whatever plays
            time.sleep(0.3)
            daemon.send_signal(signal.SIGUSR2)  # unmute
        return False

    return _wait(settled, SETTLE_TIMEOUT_S)


def _conversation(
    index: int,
    talk: TalkOver,
    player: Player,
    recorder: Recorder,
    tail: LogTail,
    voices: Path,
    gain_db: float,
    run: SessionRun,
) -> None:
    request = _voice(REQUEST, voices, gain_db)
    run.injections.append(Injection(REQUEST, "request", index, player.play(request, recorder)))
    # The story sounds once Spine is speaking; the wake chime played earlier, while the user spoke.
    if not _wait(lambda: tail.poll() == "Speaking", 30):
        return  # the request was not understood: the analysis reports the conversation as not started
    looked_from = recorder.position() - round(0.3 * RATE_HZ)
    onset: list[int] = []

    def story_sounds() -> bool:
        found = _first_sound(recorder.left(looked_from))
        if found is not None:
            onset.append(looked_from + found)
        return found is not None

    if not _wait(story_sounds, 10):
        return
    start_at = onset[0] + round((talk.offset_s - 0.04) * RATE_HZ)  # the recorder lags the room by ~20 ms, pacat ~30
    voice = _voice(talk.text, voices, gain_db)
    _wait(lambda: recorder.position() >= start_at, talk.offset_s + 10)
    run.injections.append(Injection(talk.text, "talk_over", index, player.play(voice, recorder), talk.offset_s))


# ----------------------------------------------------------------------------------------------------------
# The bench and its report.


def run_config(models_config: Path | None, out_dir: Path) -> Path:
    """The configuration `spine run` gets: the user's (without [audio]) and the room's devices at 48 kHz."""
    text = models_config.read_text(encoding="utf-8") if models_config is not None else ""
    if re.search(r"^\s*\[audio\]", text, flags=re.MULTILINE):
        raise UserError("the real-stream bench sets [audio] itself: leave it out of --config", where=str(models_config))
    path = out_dir / "run.toml"
    path.write_text(text + '\n[audio]\ninput_device = "pulse"\noutput_device = "pulse"\ncard_rate_hz = 48000\n',
                    encoding="utf-8")  # fmt: skip
    return path


def run_realstream(
    plan: list[Session],
    out_dir: Path,
    config: Path | None = None,
    gain_db: float = 0.0,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    run_toml = run_config(config, out_dir)
    sessions: list[dict[str, Any]] = []
    for number, session in enumerate(plan):
        progress(f"session {number + 1}/{len(plan)}: {len(session.talk_overs)} conversations"
                 f"{' under stress-ng --cpu 2' if session.load else ''}")  # fmt: skip
        run = run_session(session, number, run_toml, out_dir, gain_db, progress)
        sessions.append(analyse_directory(run.directory))
    return result_of(sessions)


def reanalyse(out_dir: Path) -> dict[str, Any]:
    """The result of the sessions a previous run left in `out_dir` (after a change to the analysis)."""
    directories = sorted(d for d in out_dir.glob("session-*") if (d / "injections.json").exists())
    if not directories:
        raise UserError(f"no sessions to analyse in {out_dir} (run the bench first)")
    return result_of([analyse_directory(d) for d in directories])
