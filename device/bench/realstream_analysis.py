"""The real-stream suite's measures, from one session's recording (left: what Spine played, right: the
user's voice, sample-aligned), Spine's event log and what was played into the room when. Pure functions
over arrays and logged steps: unit-tested on made-up sessions (tests/test_realstream.py).

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
| mic audio lost       | how much further behind the room the mic count was at the last request than at the      |
|                      | first: audio Spine's capture dropped (it fell too far behind). A loss between requests  |
|                      | shifts the attribution of decisions until the next request re-anchors it                 |
| self-reply           | a reply asked for (`StartReply`) whose prompt is not what a user utterance before it    |
|                      | said (`MATCH_MAX_WER`), split into "echo" (closer to Spine's own words) and "misheard"  |
| stop honoured        | a stop phrase cut the story and no reply was asked for before the next conversation   |
| question answered    | the wake-word question cut the story and its reply was asked for                      |

Log times map onto the recording by the wake chimes Spine plays from Idle: each is a `PlayEarcon` at a known
log time and the first sound in the recording near it (the median offset over a session, which includes the
output latency, so a mapped decision is when it became audible). Without chimes, the time Spine said it was
running is used.

Spine's hearing may run behind the room (a busy machine): a decision is attributed by the mic sample its
cause names, mapped onto the recording through the requests' voice onsets, not by when it was made.
"""

from __future__ import annotations

import json
import re
import statistics
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.bench.tables import percentile
from device.core import commands as cmd
from device.core import events as ev
from device.rates import SPINE_RATE_HZ as RATE_HZ  # the recording's rate and Spine's log clock (WallClock)
from device.runtime.eventlog import LoggedStep, read_log
from device.sim.summary import word_error_rate, words

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
REQUEST = "Hey Jarvis. Tell me a story."
KINDS = ("Stop.", "Never mind.", "Hey Jarvis, stop.", "Hey Jarvis. What time is it?")
STOP_KINDS = frozenset(KINDS[:3])
OFFSETS_S = (0.3, 0.7, 1.5, 3.0, 6.0)

Recording = npt.NDArray[np.int16]
"""(samples, 2): left is what Spine played, right is the user's voice."""


@dataclass
class Injection:
    """One utterance played into the room: its text and the recording position when it was started."""

    text: str
    role: str  # "request" or "talk_over"
    conversation: int
    started_at: int
    planned_offset_s: float | None = None


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
        row: dict[str, Any] = {"conversation": number, "first_after_start": False, "load": load}
        if request is None or story is None or talk is None:
            row["status"] = "not started: the request was not answered" if talk is None else "no story"
            conversations.append(row)
            continue
        u = talk[1]
        epoch = _epoch_of(steps, story.turn)
        opened = _opened_at(steps, story.turn, offset)
        answer_onset = _onset_after(sounding, opened if opened is not None else story.at)
        # Cold: no answer played before this one in the session (a request left unanswered does not warm it).
        row["first_after_start"] = opened is not None and not any(
            isinstance(c, cmd.OpenPlayback) for s in steps if s.t + offset < opened for c in s.commands
        )
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
        "mic_lost_s": _s(to_recording[-1][1] - to_recording[0][1]) if to_recording else None,
        "hearing_lag_ms": {
            "p50": percentile([lag * 1000 / RATE_HZ for lag in lags], 0.5),
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
    result["load_averages"] = [float(x) for x in meta.get("load_averages", [])]
    result["directory"] = str(directory)
    return result
