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

| measure              | definition                                                                            |
|----------------------|---------------------------------------------------------------------------------------|
| onset -> silence     | the talk-over's first sample (right) -> the first sample of the silence (left, at least |
|                      | `SILENT_RUN_S`) that outlasts the first pause/cut of the story after the onset          |
| interrupted / missed | the story was cut from `SOUNDING_BEFORE_S` before the onset to `DECISION_GRACE_S` after |
|                      | the talk-over ended / it was not (every talk-over counts, whatever its length)          |
| self-interruption    | a pause or cut of playback caused by no user audio: the mic sample its cause names (a    |
|                      | hint's onset, a wake word's end, a transcript's end) mapped onto the recording lies in   |
|                      | no utterance (from `SOUNDING_BEFORE_S` before it to `HEARD_AFTER_S` after it)            |
| hearing lag          | log time of a hearing event minus the recording time of the mic sample it names: how    |
|                      | far Spine's hearing ran behind the room                                                 |
| self-reply           | a reply asked for (`StartReply`) whose prompt is not what a user utterance before it    |
|                      | said (`MATCH_MAX_WER`), split into "echo" (closer to Spine's own words) and "misheard"  |
| stop honoured        | a stop phrase cut the story and no reply was asked for before the next conversation   |
| question answered    | the wake-word question cut the story and its reply was asked for                      |

Log times map onto the recording by the wake chimes Spine plays from Idle: each is a `PlayEarcon` at a known
log time and the first sound in the recording near it (the median offset over a session, which includes the
output latency, so a mapped decision is when it became audible). Without chimes, the time Spine said it was
running is used.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import statistics
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

from device.core import commands as cmd
from device.core import events as ev
from device.errors import UserError
from device.runtime.eventlog import LoggedStep, read_log
from device.sim.summary import word_error_rate, words

RATE_HZ = 16000
"""The recording's rate and Spine's log clock (`WallClock(RATE_HZ)` in device/run.py)."""
FRAME_SAMPLES = 160
SOUND_LEVEL = 100
"""A 10 ms frame sounds when its peak exceeds this (-50 dBFS): the room is digital silence otherwise, and
Piper's quietest voiced frames are far above it."""
SILENT_RUN_S = 0.15
"""Silence shorter than this inside the story is a stop consonant or a breath, not the speaker falling silent."""
SOUNDING_BEFORE_S = 0.3
"""As in the simulated suite (device/sim/bargein.py): a decision up to this long before an utterance's first
sample counts as caused by it (the mapping of log time onto the recording is good to a few tens of ms)."""
DECISION_GRACE_S = 2.0
"""A cut this long after the utterance ended still counts as its interruption. The simulated room allows 1 s;
a real stream under load adds ASR and scheduling delay, and a stop phrase is only known once transcribed."""
HEARD_AFTER_S = 1.0
"""The mic sample an event names may lie this long after an utterance's last sample and still be caused by it:
an endpoint (`SpeechEnded`, a transcript's end) comes after the end-of-utterance silence (0.6 s by default)."""
MATCH_MAX_WER = 0.5
"""A reply's prompt is what a user said when its word error rate against that utterance is at most this."""
QUIET_BEFORE_S = 1.0
"""A conversation starts after Spine is idle and its speaker silent this long."""
RESCUE_AFTER_S = 8.0
"""A story still playing this long after a talk-over ended was missed (a wake-word question is answered well
within it): mute and unmute Spine to end it (SIGUSR1,
SIGUSR2) instead of waiting out 48 s of story. The mute is excluded from the decisions measured."""
SETTLE_TIMEOUT_S = 40.0
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pulse-null-sink.sh"

REQUEST = "Hey Jarvis. Tell me a story."
WAKE_PHRASE = "hey jarvis"
KINDS = ("Stop.", "Never mind.", "Hey Jarvis, stop.", "Hey Jarvis. What time is it?")
STOP_KINDS = frozenset(KINDS[:3])
OFFSETS_S = (0.3, 0.7, 1.5, 3.0, 6.0)

Recording = npt.NDArray[np.int16]
"""(samples, 2): left is what Spine played, right is the user's voice."""


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
class Injection:
    """One utterance played into the room: its text and the recording position when it was started."""

    text: str
    role: str  # "request" or "talk_over"
    conversation: int
    started_at: int
    planned_offset_s: float | None = None


@dataclass
class SessionRun:
    load: bool
    directory: Path
    injections: list[Injection] = field(default_factory=list)
    running_at: int = 0
    """The recording position when `spine run` said it was running (the fallback log-to-recording mapping)."""
    rescues: list[int] = field(default_factory=list)
    unsettled: int = 0
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


def _play(env: dict[str, str], wav: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["paplay", "-d", "spine_user", str(wav)], env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def _voice(text: str, directory: Path, gain_db: float) -> Path:
    from device.sim.speech import synthesize

    path = directory / (re.sub(r"[^a-z]+", "_", text.lower()).strip("_") + ".wav")
    if not path.exists():
        samples = synthesize(text, "en-us", RATE_HZ, gain_db)
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RATE_HZ)
            out.writeframes(samples.tobytes())
    return path


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
                        _conversation(index, talk, env, recorder, tail, voices, gain_db, result)
                        progress(f"  session {number} ({'load' if session.load else 'no load'}): "
                                 f"{talk.text!r} at {talk.offset_s} s done")  # fmt: skip
                    _settle(recorder, tail, daemon, result)
        finally:
            recording = recorder.stop()
    with wave.open(str(directory / "recording.wav"), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(RATE_HZ)
        out.writeframes(recording.tobytes())
    (directory / "injections.json").write_text(
        json.dumps({"running_at": result.running_at, "rescues": result.rescues, "unsettled": result.unsettled,
                    "load": session.load, "injections": [asdict(i) for i in result.injections]}, indent=1) + "\n",
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
        if tail.poll() == "Idle" and at > quiet and _first_sound(recorder.left(at - quiet)) is None:
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
    env: dict[str, str],
    recorder: Recorder,
    tail: LogTail,
    voices: Path,
    gain_db: float,
    run: SessionRun,
) -> None:
    request = Injection(REQUEST, "request", index, recorder.position())
    run.injections.append(request)
    _play(env, _voice(REQUEST, voices, gain_db)).wait(timeout=30)
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
    start_at = onset[0] + round(talk.offset_s * RATE_HZ) - round(0.07 * RATE_HZ)  # paplay takes ~70 ms to sound
    _wait(lambda: recorder.position() >= start_at, talk.offset_s + 10)
    run.injections.append(Injection(talk.text, "talk_over", index, recorder.position(), talk.offset_s))
    _play(env, _voice(talk.text, voices, gain_db)).wait(timeout=30)


# ----------------------------------------------------------------------------------------------------------
# Analysis: pure functions over the recording, the log and the injections (unit-tested without a stream).


@dataclass(frozen=True)
class Utterance:
    text: str
    role: str
    conversation: int
    onset: int
    end: int
    planned_offset_s: float | None


def find_utterances(right: npt.NDArray[np.int16], injections: list[Injection]) -> list[Utterance]:
    """Each injection's real first and last sounding sample in the user's channel (before the next one)."""
    found: list[Utterance] = []
    for i, injection in enumerate(injections):
        stop = injections[i + 1].started_at if i + 1 < len(injections) else len(right)
        part = np.abs(right[injection.started_at : stop].astype(np.int32))
        loud = np.flatnonzero(part > SOUND_LEVEL)
        if not len(loud):
            continue
        found.append(Utterance(injection.text, injection.role, injection.conversation,
                               injection.started_at + int(loud[0]), injection.started_at + int(loud[-1]) + 1,
                               injection.planned_offset_s))  # fmt: skip
    return found


def sounding_frames(left: npt.NDArray[np.int16]) -> npt.NDArray[np.bool_]:
    """Per 10 ms frame of the assistant's channel: did it sound."""
    whole = len(left) // FRAME_SAMPLES * FRAME_SAMPLES
    frames = np.abs(left[:whole].astype(np.int32)).reshape(-1, FRAME_SAMPLES)
    return np.asarray(frames.max(axis=1) > SOUND_LEVEL, dtype=np.bool_)


def silent_runs(sounding: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[start, end) sample ranges where the assistant was silent for at least `SILENT_RUN_S`."""
    minimum = round(SILENT_RUN_S * RATE_HZ / FRAME_SAMPLES)
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for i, value in enumerate([*sounding.tolist(), True]):
        if not value and start is None:
            start = i
        elif value and start is not None:
            if i - start >= minimum:
                runs.append((start * FRAME_SAMPLES, i * FRAME_SAMPLES))
            start = None
    return runs


def log_offset(steps: list[LoggedStep], sounding: npt.NDArray[np.bool_], fallback: int) -> int:
    """Recording sample minus log sample, from the wake chimes played from Idle (median), else `fallback`."""
    offsets: list[int] = []
    state = "Idle"
    for step in steps:
        if state == "Idle" and isinstance(step.event, ev.WakeDetected):
            for command in step.commands:
                if isinstance(command, cmd.PlayEarcon):
                    # From 1 s before to 1.5 s after where the fallback puts it: the first sound is the chime.
                    low = max((step.t + fallback - RATE_HZ) // FRAME_SAMPLES, 0)
                    high = min((step.t + fallback + 3 * RATE_HZ // 2) // FRAME_SAMPLES, len(sounding))
                    hits = np.flatnonzero(sounding[low:high])
                    if len(hits):
                        offsets.append((low + int(hits[0])) * FRAME_SAMPLES - step.t)
        state = step.state
    return round(statistics.median(offsets)) if offsets else fallback


@dataclass(frozen=True)
class Decision:
    at: int  # recording sample (when it was made, audible within the output latency)
    epoch: int
    kind: str  # "pause", "resume" or "cut"
    heard: int | None
    """The mic sample (Spine's hearing count) of what caused it: the sample its event names, or for a timer the
    last one hearing named before it (the hint the confirmation window followed)."""


HEARD_FIELDS = ("onset_sample", "at_sample", "end_sample", "to_sample")


def heard_sample(event: ev.Event) -> int | None:
    """The mic sample a hearing event names (the onset of a hint, the end of a wake word, ...), if any."""
    for name in HEARD_FIELDS:
        value = getattr(event, name, None)
        if isinstance(value, int):
            return value
    return None


def decisions(steps: list[LoggedStep], offset: int) -> list[Decision]:
    """Playback decisions about the user, at their recording time (the end of the run and mutes excluded)."""
    out: list[Decision] = []
    last_heard: int | None = None
    for step in steps:
        named = heard_sample(step.event)
        last_heard = named if named is not None else last_heard
        if isinstance(step.event, ev.StopRequested | ev.MuteChanged):
            continue
        for command in step.commands:
            if isinstance(command, cmd.PausePlayback):
                out.append(Decision(step.t + offset, command.epoch, "pause", last_heard))
            elif isinstance(command, cmd.ResumePlayback):
                out.append(Decision(step.t + offset, command.epoch, "resume", last_heard))
            elif isinstance(command, cmd.CutPlayback):
                out.append(Decision(step.t + offset, command.epoch, "cut", last_heard))
    return out


def mic_offsets(steps: list[LoggedStep], utterances: list[Utterance], offset: int) -> list[tuple[int, int]]:
    """(mic sample, recording sample minus mic sample) from each request: the first voice onset hearing reports
    from its first sample on is its onset. Spine's hearing may run seconds behind the room when the machine is
    busy, and its capture ring drops the oldest audio when it falls too far behind, so the mic count is mapped
    onto the recording afresh at every request rather than through the log's clock."""
    found: list[tuple[int, int]] = []
    before = round(SOUNDING_BEFORE_S * RATE_HZ)
    for u in utterances:
        if u.role != "request":
            continue
        first = next((s for s in steps if isinstance(s.event, ev.VoiceHint | ev.SpeechStarted)
                      and s.t + offset >= u.onset - before), None)  # fmt: skip
        if first is not None:
            onset = heard_sample(first.event)
            assert onset is not None
            found.append((onset, u.onset - onset))
    return found


def heard_at(heard: int, offsets: list[tuple[int, int]], fallback: int) -> int:
    """The recording sample of mic sample `heard`, by the last request's mapping at or before it."""
    usable = [o for m, o in offsets if m <= heard] or [o for _, o in offsets[:1]] or [fallback]
    return heard + usable[-1]


@dataclass(frozen=True)
class Reply:
    at: int  # recording sample
    turn: int
    prompt: str


def replies(steps: list[LoggedStep], offset: int) -> list[Reply]:
    return [Reply(s.t + offset, c.turn, c.prompt) for s in steps for c in s.commands if isinstance(c, cmd.StartReply)]


def _meant(text: str) -> str:
    """What an utterance asks, without the wake phrase (whisper never hears it: hearing strips it)."""
    return re.sub(r"^\W*hey\W+jarvis\b\W*", "", text, flags=re.IGNORECASE)


def _licensed(reply: Reply, utterances: list[Utterance], used: set[int]) -> int | None:
    """The utterance, ended before the reply and not yet answered, whose words the prompt matches."""
    for i in range(len(utterances) - 1, -1, -1):
        u = utterances[i]
        if i in used or u.onset > reply.at:
            continue
        if word_error_rate(_meant(u.text), reply.prompt) <= MATCH_MAX_WER:
            return i
    return None


def _own_words(steps: list[LoggedStep]) -> list[str]:
    return [w for s in steps for c in s.commands if isinstance(c, cmd.StartTts) for w in words(c.text)]


def analyse_session(
    recording: Recording, steps: list[LoggedStep], injections: list[Injection], running_at: int, load: bool
) -> dict[str, Any]:
    """The measures of one session (see the module's table)."""
    left, right = recording[:, 0], recording[:, 1]
    utterances = find_utterances(right, injections)
    sounding = sounding_frames(left)
    offset = log_offset(steps, sounding, running_at)
    made = decisions(steps, offset)
    asked = replies(steps, offset)
    runs = silent_runs(sounding)
    before = round(SOUNDING_BEFORE_S * RATE_HZ)
    grace = round(DECISION_GRACE_S * RATE_HZ)

    def sounding_user(at: int) -> bool:
        # From the mic sample that caused a decision: it was the user's if it lies in an utterance (from a little
        # before its first sample, to the end of the endpoint silence after it) - however late hearing got to it.
        return any(u.onset - before <= at <= u.end + round(HEARD_AFTER_S * RATE_HZ) for u in utterances)

    used: set[int] = set()
    self_replies: list[dict[str, Any]] = []
    own = set(_own_words(steps))
    answered_by: dict[int, Reply] = {}
    for reply in asked:
        i = _licensed(reply, utterances, used)
        if i is None:
            said = words(reply.prompt)
            echo = bool(said) and sum(w in own for w in said) / len(said) > 0.5
            self_replies.append({"at_s": _s(reply.at), "prompt": reply.prompt, "cause": "echo" if echo else "misheard"})
        else:
            used.add(i)
            answered_by[i] = reply

    conversations: list[dict[str, Any]] = []
    for number in sorted({u.conversation for u in utterances}):
        mine = [(i, u) for i, u in enumerate(utterances) if u.conversation == number]
        request = next(((i, u) for i, u in mine if u.role == "request"), None)
        talk = next(((i, u) for i, u in mine if u.role == "talk_over"), None)
        story = answered_by.get(request[0]) if request else None
        row: dict[str, Any] = {"conversation": number, "first_after_start": number == 0, "load": load}
        if request is None or story is None or talk is None:
            row["status"] = "not started: the request was not answered" if talk is None else "no story"
            conversations.append(row)
            continue
        u = talk[1]
        epoch = _epoch_of(steps, story.turn)
        opened = _opened_at(steps, story.turn, offset)
        answer_onset = _onset_after(sounding, opened if opened is not None else story.at)
        later = [d for d in made if d.epoch == epoch and d.at >= u.onset - before]
        cut = next((d for d in later if d.kind == "cut"), None)
        interrupted = cut is not None and cut.at <= u.end + grace
        playing = answer_onset is not None and _playing_at(sounding, u.onset, runs)
        cut_before = next((d for d in made if d.epoch == epoch and d.kind == "cut" and d.at < u.onset - before), None)
        silence = _silence_after(u.onset, later, runs) if interrupted else None
        next_request = next((x.onset for x in utterances if x.conversation > number), len(left))
        answered = [r for r in asked if u.onset - before <= r.at < next_request]
        stop = u.text in STOP_KINDS
        row |= {
            "status": "story cut before the talk-over" if cut_before is not None else "talked over",
            "text": u.text,
            "planned_offset_s": u.planned_offset_s,
            "offset_s": _s(u.onset - answer_onset) if answer_onset is not None else None,
            "duration_s": _s(u.end - u.onset),
            "onset_s": _s(u.onset),
            "story_sounding_at_onset": playing,
            "echo_to_user_db": _echo_to_user_db(left, right, u),
            "interrupted": interrupted,
            "onset_to_silence_ms": round((silence - u.onset) * 1000 / RATE_HZ, 1) if silence is not None else None,
            "pauses": sum(1 for d in later if d.kind == "pause" and d.at <= u.end + grace),
            "resumes_while_talking": sum(1 for d in later if d.kind == "resume" and d.at <= u.end),
            "replies_after": [r.prompt for r in answered],
            "kind": "stop" if stop else "question",
            "honoured": interrupted
            and (
                not answered
                if stop
                else any(word_error_rate(_meant(u.text), r.prompt) <= MATCH_MAX_WER for r in answered)
            ),
        }
        conversations.append(row)

    to_recording = mic_offsets(steps, utterances, offset)
    unexplained = [
        d
        for d in made
        if d.kind in ("pause", "cut")
        and not sounding_user(heard_at(d.heard, to_recording, offset) if d.heard is not None else d.at)
    ]
    lags = [
        s.t + offset - heard_at(h, to_recording, offset)
        for s in steps
        if isinstance(s.event, ev.VoiceHint | ev.SpeechStarted | ev.WakeDetected)
        and (h := heard_sample(s.event)) is not None
    ]
    return {
        "load": load,
        "log_offset_ms": round(offset * 1000 / RATE_HZ, 1),
        "conversations": conversations,
        "self_interruptions": [
            {
                "at_s": _s(d.at),
                "kind": d.kind,
                "epoch": d.epoch,
                "heard_at_s": _s(heard_at(d.heard, to_recording, offset)) if d.heard is not None else None,
            }
            for d in unexplained
        ],
        "hearing_lag_ms": {
            "p50": _percentile([lag * 1000 / RATE_HZ for lag in lags], 0.5),
            "max": round(max(lags) * 1000 / RATE_HZ, 1) if lags else None,
        },
        "self_replies": self_replies,
        "replies": len(asked),
        "leaks": sum(1 for s in steps if isinstance(s.event, ev.JobLeaked)),
        "device_lost": sum(1 for s in steps if isinstance(s.event, ev.AudioDeviceLost)),
    }


def _s(samples: int) -> float:
    return round(samples / RATE_HZ, 3)


def _epoch_of(steps: list[LoggedStep], turn: int) -> int | None:
    for step in steps:
        for command in step.commands:
            if isinstance(command, cmd.OpenPlayback) and command.turn == turn:
                return command.epoch
    return None


def _opened_at(steps: list[LoggedStep], turn: int, offset: int) -> int | None:
    for step in steps:
        if any(isinstance(c, cmd.OpenPlayback) and c.turn == turn for c in step.commands):
            return step.t + offset
    return None


def _onset_after(sounding: npt.NDArray[np.bool_], at: int) -> int | None:
    start = max(at - round(0.2 * RATE_HZ), 0) // FRAME_SAMPLES
    hits = np.flatnonzero(sounding[start:])
    return (start + int(hits[0])) * FRAME_SAMPLES if len(hits) else None


def _playing_at(sounding: npt.NDArray[np.bool_], at: int, runs: list[tuple[int, int]]) -> bool:
    """The assistant's channel sounded at `at` or was inside a short gap (not a silence of `SILENT_RUN_S`)."""
    return not any(start <= at < end for start, end in runs) and at // FRAME_SAMPLES < len(sounding)


def _silence_after(onset: int, later: list[Decision], runs: list[tuple[int, int]]) -> int | None:
    """The first sample of the silence that outlasts the first pause or cut after the onset (clamped to it)."""
    for decision in later:
        if decision.kind not in ("pause", "cut"):
            continue
        run = next(((start, end) for start, end in runs if end > decision.at), None)
        if run is not None:
            return max(run[0], onset)
    return None


def _echo_to_user_db(left: npt.NDArray[np.int16], right: npt.NDArray[np.int16], u: Utterance) -> float | None:
    """The assistant's level at the mic in the 0.5 s before the onset over the user's voice, in dB."""
    echo = left[max(u.onset - RATE_HZ // 2, 0) : u.onset].astype(np.float64)
    user = right[u.onset : u.end].astype(np.float64)
    if not len(echo) or not len(user):
        return None
    e, v = float(np.mean(echo * echo)), float(np.mean(user * user))
    return round(10 * np.log10(e / v), 1) if e > 0 and v > 0 else None


def analyse_directory(directory: Path) -> dict[str, Any]:
    """Analyse a session's files (recording.wav, events.jsonl, injections.json) as `run_session` wrote them."""
    meta = json.loads((directory / "injections.json").read_text(encoding="utf-8"))
    with wave.open(str(directory / "recording.wav"), "rb") as f:
        recording = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").reshape(-1, 2).astype(np.int16)
    steps = list(read_log(directory / "events.jsonl").steps)
    injections = [Injection(**i) for i in meta["injections"]]
    result = analyse_session(recording, steps, injections, int(meta["running_at"]), bool(meta["load"]))
    stderr = directory / "stderr.txt"
    text = stderr.read_text(encoding="utf-8", errors="replace") if stderr.exists() else ""
    result["underruns_reported"] = len(re.findall(r"underrun", text, flags=re.IGNORECASE))
    result["rescues"] = len(meta["rescues"])
    result["unsettled"] = int(meta["unsettled"])
    result["directory"] = str(directory)
    return result


# ----------------------------------------------------------------------------------------------------------
# The bench and its report.


def run_config(models_config: Path | None, out_dir: Path) -> Path:
    """The configuration `spine run` gets: the user's (without [audio]) and the room's devices at 48 kHz."""
    text = models_config.read_text(encoding="utf-8") if models_config is not None else ""
    if re.search(r"^\s*\[audio\]", text, flags=re.MULTILINE):
        raise UserError("the real-stream bench sets [audio] itself: leave it out of --config", where=str(models_config))
    path = out_dir / "run.toml"
    path.write_text(text + '\n[audio]\ninput_device = "pulse"\noutput_device = "pulse"\ndevice_rate_hz = 48000\n',
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


def result_of(sessions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "sessions": sessions,
        "aggregates": {"load": aggregate(sessions, True), "no_load": aggregate(sessions, False)},
    }


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (rank - low), 1)


TARGETS = {
    "self_interruptions": 0,
    "self_replies": 0,
    "missed_fraction": 0.05,
    "onset_to_silence_p95_ms": 200.0,
}


def aggregate(sessions: list[dict[str, Any]], load: bool) -> dict[str, Any]:
    mine = [s for s in sessions if s["load"] == load]
    rows = [c for s in mine for c in s["conversations"]]
    talked = [c for c in rows if c["status"] == "talked over"]
    silences = [float(c["onset_to_silence_ms"]) for c in talked if c["onset_to_silence_ms"] is not None]
    missed = sum(1 for c in talked if not c["interrupted"])
    stops = [c for c in talked if c["kind"] == "stop"]
    questions = [c for c in talked if c["kind"] == "question"]
    self_interruptions = sum(len(s["self_interruptions"]) for s in mine)
    self_replies = [r for s in mine for r in s["self_replies"]]
    p95 = _percentile(silences, 0.95)
    by_offset = {
        str(o): {
            "n": len(at := [c for c in talked if c["planned_offset_s"] == o]),
            "missed": sum(1 for c in at if not c["interrupted"]),
            "p50_ms": _percentile([c["onset_to_silence_ms"] for c in at if c["onset_to_silence_ms"] is not None], 0.5),
        }
        for o in OFFSETS_S
    }
    first = [c for c in talked if c["first_after_start"]]
    return {
        "sessions": len(mine),
        "conversations_planned": len(rows) + sum(s["unsettled"] for s in mine),
        "talk_overs": len(talked),
        "not_talked_over": {
            "request_not_answered": sum(1 for c in rows if c["status"].startswith("not started")),
            "no_story": sum(1 for c in rows if c["status"] == "no story"),
            "story_cut_before_the_talk_over": sum(1 for c in rows if c["status"] == "story cut before the talk-over"),
            "spine_never_idle": sum(s["unsettled"] for s in mine),
        },
        "onset_to_silence_ms": {"n": len(silences), "p50": _percentile(silences, 0.5), "p95": p95},
        "missed": missed,
        "missed_first_after_start": sum(1 for c in first if not c["interrupted"]),
        "first_after_start": len(first),
        "stop_phrases": len(stops),
        "stop_phrases_honoured": sum(1 for c in stops if c["honoured"]),
        "stop_phrases_answered": sum(1 for c in stops if c["replies_after"]),
        "questions": len(questions),
        "questions_answered": sum(1 for c in questions if c["honoured"]),
        "self_interruptions": self_interruptions,
        "self_replies": len(self_replies),
        "self_replies_echo": sum(1 for r in self_replies if r["cause"] == "echo"),
        "pauses": sum(c["pauses"] for c in talked),
        "resumes_while_user_talked": sum(c["resumes_while_talking"] for c in talked),
        "leaks": sum(s["leaks"] for s in mine),
        "underruns_reported": sum(s["underruns_reported"] for s in mine),
        "rescued_by_mute": sum(s["rescues"] for s in mine),
        "by_offset_s": by_offset,
        "targets": {
            "self_interruptions": self_interruptions <= TARGETS["self_interruptions"],
            "self_replies": len(self_replies) <= TARGETS["self_replies"],
            "missed": bool(talked) and missed <= TARGETS["missed_fraction"] * len(talked),
            "onset_to_silence_p95": p95 is not None and p95 <= TARGETS["onset_to_silence_p95_ms"],
        },
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _met(value: bool) -> str:
    return "**met**" if value else "**missed**"


def report_markdown(result: dict[str, Any], command: str) -> str:
    load, idle = result["aggregates"]["load"], result["aggregates"]["no_load"]
    lines = [
        "# Real-stream suite: `spine run` talked over on a PulseAudio room",
        "",
        f"Generated by `{command}`. `spine run` (real models, 48 kHz device rate) on a private PulseAudio:",
        "the speaker reaches the mic at 0 dB, the user (espeak-ng) too; Spine's output and the user's voice are",
        "recorded apart (left/right of `spine_room`), so onset → silence is measured from what Spine played.",
        "Load: `stress-ng --cpu 2` for the whole session. See `device/sim/realstream.py` for every definition.",
        "",
        "## Aggregates",
        "",
        "| measure | with load | without load | target (issue 9) |",
        "|---|---|---|---|",
        f"| sessions / conversations planned / talk-overs | {load['sessions']} / {load['conversations_planned']} /"
        f" {load['talk_overs']} | {idle['sessions']} / {idle['conversations_planned']} / {idle['talk_overs']} |"
        " ≥ 20 with load |",
        f"| self-interruptions (pause/cut, no user audio) | {load['self_interruptions']} |"
        f" {idle['self_interruptions']} | 0: {_met(load['targets']['self_interruptions'])} |",
        f"| self-replies (echo / all) | {load['self_replies_echo']} / {load['self_replies']} |"
        f" {idle['self_replies_echo']} / {idle['self_replies']} | 0: {_met(load['targets']['self_replies'])} |",
        f"| missed talk-overs | {load['missed']} of {load['talk_overs']} | {idle['missed']} of {idle['talk_overs']}"
        f" | ≤ 5 %: {_met(load['targets']['missed'])} |",
        f"| missed, first answer after start | {load['missed_first_after_start']} of {load['first_after_start']} |"
        f" {idle['missed_first_after_start']} of {idle['first_after_start']} | |",
        f"| onset → silence p50 / p95 (n) | {_cell(load['onset_to_silence_ms']['p50'])} /"
        f" {_cell(load['onset_to_silence_ms']['p95'])} ms ({load['onset_to_silence_ms']['n']}) |"
        f" {_cell(idle['onset_to_silence_ms']['p50'])} / {_cell(idle['onset_to_silence_ms']['p95'])} ms"
        f" ({idle['onset_to_silence_ms']['n']}) | p95 ≤ 200 ms: {_met(load['targets']['onset_to_silence_p95'])} |",
        f"| stop phrases honoured (cut, not answered) / answered | {load['stop_phrases_honoured']} of"
        f" {load['stop_phrases']} / {load['stop_phrases_answered']} | {idle['stop_phrases_honoured']} of"
        f" {idle['stop_phrases']} / {idle['stop_phrases_answered']} | |",
        f"| wake-word questions answered | {load['questions_answered']} of {load['questions']} |"
        f" {idle['questions_answered']} of {idle['questions']} | |",
        f"| pauses during talk-overs / resumes while the user talked | {load['pauses']} /"
        f" {load['resumes_while_user_talked']} | {idle['pauses']} / {idle['resumes_while_user_talked']} | |",
        "| not talked over: request unanswered / story cut before / never idle | "
        + " / ".join(str(v) for k, v in load["not_talked_over"].items() if k != "no_story")
        + " | "
        + " / ".join(str(v) for k, v in idle["not_talked_over"].items() if k != "no_story")
        + " | |",
        f"| stories ended by a mute after a miss | {load['rescued_by_mute']} | {idle['rescued_by_mute']} | |",
        f"| leaked jobs / underruns on stderr | {load['leaks']} / {load['underruns_reported']} |"
        f" {idle['leaks']} / {idle['underruns_reported']} | |",
        "",
        "The targets are judged on the sessions with load. Missed by offset into the story (with load; without):",
        "",
        "| offset s | " + " | ".join(str(o) for o in OFFSETS_S) + " |",
        "|---|" + "---|" * len(OFFSETS_S),
        "| missed / n, p50 ms | "
        + " | ".join(
            f"{load['by_offset_s'][str(o)]['missed']}/{load['by_offset_s'][str(o)]['n']},"
            f" {_cell(load['by_offset_s'][str(o)]['p50_ms'])}; {idle['by_offset_s'][str(o)]['missed']}/"
            f"{idle['by_offset_s'][str(o)]['n']}, {_cell(idle['by_offset_s'][str(o)]['p50_ms'])}"
            for o in OFFSETS_S
        )
        + " |",
        "",
        "## Conversations",
        "",
        "Offset: planned / measured (the story's first sample to the user's). Echo/user: Spine's level in the 0.5 s",
        "before the onset over the user's voice.",
        "",
        "| session | load | # | talk-over | offset s | echo/user dB | interrupted | onset → silence ms | pauses |"
        " honoured | replies asked after it |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for number, session in enumerate(result["sessions"]):
        for c in session["conversations"]:
            if c["status"] != "talked over":
                lines.append(f"| {number} | {_cell(session['load'])} | {c['conversation']} | {c['status']} |"
                             + " |" * 7)  # fmt: skip
                continue
            lines.append(
                "| "
                + " | ".join(
                    _cell(v)
                    for v in (
                        number,
                        session["load"],
                        f"{c['conversation']}{' (first)' if c['first_after_start'] else ''}",
                        repr(c["text"]),
                        f"{c['planned_offset_s']} / {_cell(c['offset_s'])}",
                        c["echo_to_user_db"],
                        c["interrupted"],
                        c["onset_to_silence_ms"],
                        c["pauses"],
                        c["honoured"],
                        "; ".join(repr(p) for p in c["replies_after"]) or "none",
                    )
                )
                + " |"
            )
    lines += ["", "## Self-interruptions and self-replies", ""]
    for number, session in enumerate(result["sessions"]):
        for item in session["self_interruptions"]:
            lines.append(f"- session {number}: {item['kind']} at {item['at_s']} s with no user audio sounding")
        for item in session["self_replies"]:
            lines.append(
                f"- session {number}: reply asked at {item['at_s']} s for {item['prompt']!r} ({item['cause']})"
            )
    if lines[-1] == "":
        lines.append("None.")
    return "\n".join(lines) + "\n"


def write_report(result: dict[str, Any], markdown: Path, command: str) -> None:
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(report_markdown(result, command), encoding="utf-8")
    markdown.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
