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
report: device/bench/realstream_report.py; the processes it starts: device/bench/realstream_room.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.bench.realstream_analysis import KINDS, OFFSETS_S, REQUEST, analyse_directory
from device.bench.realstream_clock import FRAME_SAMPLES, SOUND_LEVEL, Injection, Recording
from device.bench.realstream_report import result_of
from device.bench.realstream_room import LogTail, Recorder, cpu_load, room_server, spine_run
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
within it): mute and unmute Spine to end it (SIGUSR1, SIGUSR2) instead of waiting out 48 s of story, and again
every `RESCUE_AFTER_S` while it is still not idle (an answer to a misheard stop can be the story again). The
mutes are excluded from the decisions measured; a reply nobody asked for still counts as a self-reply."""
SETTLE_TIMEOUT_S = 40.0


@dataclass(frozen=True)
class TalkOver:
    offset_s: float
    text: str


@dataclass(frozen=True)
class Session:
    load: bool
    talk_overs: tuple[TalkOver, ...]
    minutes: float | None = None
    """A soak session: no conversation starts after it has run this long (its talk-overs outnumber what fits)."""


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


CONVERSATION_MIN_S = 5.0
"""No conversation is shorter (the request alone is 3 s; measured 10 s each): the plan holds more than fit."""


def hour_plan(minutes: float = 60.0) -> list[Session]:
    """The real-stream soak: one `spine run` without load for `minutes`, conversation after conversation, the
    talk-overs cycling through every (offset, kind) pair so that each kind meets each offset."""
    count = int(minutes * 60 / CONVERSATION_MIN_S) + 1
    talk_overs = tuple(
        TalkOver(OFFSETS_S[i % len(OFFSETS_S)], KINDS[(i // len(OFFSETS_S) + i % len(OFFSETS_S)) % len(KINDS)])
        for i in range(count)
    )
    return [Session(False, talk_overs, minutes)]


def short_plan() -> list[Session]:
    """The CI setting: four conversations, one under load, cold and warm answers, every kind."""
    return [
        Session(False, (TalkOver(0.7, "Stop."), TalkOver(1.5, KINDS[3]), TalkOver(3.0, "Never mind."))),
        Session(True, (TalkOver(1.5, "Hey Jarvis, stop."),)),
    ]


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
    rss_mb: list[tuple[int, float]] = field(default_factory=list)
    """(recording position, resident memory of `spine run` in MB) before each conversation and at the end."""
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


def _speaker_now(recorder: Recorder) -> str:
    """Whether Spine's speaker sounded in the last second of the room: for the message when it never settles."""
    at = recorder.position()
    sounding = at > RATE_HZ and _first_sound(recorder.left(at - RATE_HZ)) is not None
    return "sounding" if sounding else "quiet"


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
                    started = time.monotonic()
                    for index, talk in enumerate(session.talk_overs):
                        if session.minutes is not None and time.monotonic() - started >= session.minutes * 60:
                            break
                        if not _settle(recorder, tail, daemon, result):
                            result.unsettled += len(session.talk_overs) - index
                            progress(f"  session {number}: Spine did not go idle within {SETTLE_TIMEOUT_S:g} s "
                                     f"(state {tail.state}, {len(result.rescues)} mutes so far, speaker "
                                     f"{_speaker_now(recorder)}); {result.unsettled} not run")  # fmt: skip
                            break
                        result.load_averages.append(round(os.getloadavg()[0], 2))
                        result.rss_mb.append((recorder.position(), _rss_mb(daemon.pid)))
                        _conversation(index, talk, player, recorder, tail, voices, gain_db, result)
                        progress(f"  session {number} ({'load' if session.load else 'no load'}): "
                                 f"{talk.text!r} at {talk.offset_s} s done")  # fmt: skip
                    _settle(recorder, tail, daemon, result)
                    result.rss_mb.append((recorder.position(), _rss_mb(daemon.pid)))
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
                    "minutes": session.minutes, "rss_mb": result.rss_mb,
                    "injections": [asdict(i) for i in result.injections]}, indent=1) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    return result


def _rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (VmRSS of /proc/PID/status); 0.0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return 0.0
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, flags=re.MULTILINE)
    return round(int(found.group(1)) / 1024, 1) if found else 0.0


def _settle(recorder: Recorder, tail: LogTail, daemon: subprocess.Popen[str], run: SessionRun) -> bool:
    """Wait until Spine is idle and its speaker quiet for `QUIET_BEFORE_S`; end a story that outlived its
    talk-over by `RESCUE_AFTER_S` with a mute and unmute."""
    last_rescue = time.monotonic()
    quiet = round(QUIET_BEFORE_S * RATE_HZ)

    def settled() -> bool:
        nonlocal last_rescue
        at = recorder.position()
        warm = at - run.running_at >= round(START_GRACE_S * RATE_HZ)
        if warm and tail.poll() == "Idle" and at > quiet and _first_sound(recorder.left(at - quiet)) is None:
            return True
        if time.monotonic() - last_rescue > RESCUE_AFTER_S and tail.state not in ("Idle", "Listening"):
            last_rescue = time.monotonic()
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
