"""The real-stream suite's measures, from one session's recording (left: what Spine played, right: the
user's voice, sample-aligned), Spine's event log and what was played into the room when. Pure functions
over arrays and logged steps: unit-tested on made-up sessions (tests/test_realstream.py). How the log and
the recording are put on one time line: device/bench/realstream_clock.py.

| measure              | definition                                                                            |
|----------------------|---------------------------------------------------------------------------------------|
| onset -> silence     | the talk-over's first sample (right) -> the first sample of the silence (left, at least |
|                      | `SILENT_RUN_S`) that outlasts the first pause/cut of the story after the onset          |
| interrupted / missed | the story was cut from `SOUNDING_BEFORE_S` before the onset to `DECISION_GRACE_S` after |
|                      | the talk-over ended / it was not (every talk-over counts, whatever its length)          |
| self-interruption    | a pause or cut of playback caused by no user audio: the mic sample its cause names (a    |
|                      | hint's onset, a wake word's end, a transcript's end) mapped onto the recording lies in   |
|                      | no utterance (from `SOUNDING_BEFORE_S` before it to `HEARD_AFTER_S` after it), wherever |
|                      | between the mappings by the requests before and after it it was (audio lost between)   |
| hearing lag          | log time of a hearing event minus the recording time of the mic sample it names: how    |
|                      | far Spine's hearing ran behind the room                                                 |
| mic audio lost       | how much further behind the room the mic count was at the last request than at the      |
|                      | first: audio Spine's capture dropped (it fell too far behind). A decision between two   |
|                      | requests is the user's if a user utterance lies anywhere between its two mappings        |
| self-reply           | a reply asked for (`StartReply`) whose prompt is not what a user utterance before it    |
|                      | said (`MATCH_MAX_WER`), split into "echo" (closer to Spine's own words) and "misheard"  |
| stop honoured        | a stop phrase cut the story and no reply was asked for before the next conversation   |
| question answered    | the wake-word question cut the story and its reply was asked for                      |
| wake word heard      | a talk-over that begins with the wake phrase: a `WakeDetected` (not in Spine's own     |
|                      | speech) whose mic sample may lie in it, as for a self-interruption's cause              |

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
import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.bench.realstream_clock import (
    FRAME_SAMPLES,
    SOUNDING_BEFORE_S,
    Decision,
    Injection,
    Recording,
    Reply,
    Utterance,
    decisions,
    find_utterances,
    heard_at,
    heard_sample,
    heard_within,
    log_offset,
    mic_offsets,
    replies,
    silent_runs,
    sounding_frames,
)
from device.bench.tables import percentile
from device.core import commands as cmd
from device.core import events as ev
from device.rates import SPINE_RATE_HZ as RATE_HZ  # the recording's rate and Spine's log clock (WallClock)
from device.runtime.eventlog import LoggedStep, read_log
from device.sim.summary import word_error_rate, words

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
WAKE_AT_START = re.compile(r"^\W*hey\W+jarvis\b\W*", flags=re.IGNORECASE)


def _meant(text: str) -> str:
    """What an utterance asks, without the wake phrase (whisper never hears it: hearing strips it)."""
    return WAKE_AT_START.sub("", text)


def _licensed(reply: Reply, utterances: list[Utterance], used: set[int]) -> int | None:
    """The utterance, ended before the reply and not yet answered, whose words the prompt matches."""
    for i in range(len(utterances) - 1, -1, -1):
        u = utterances[i]
        if i in used or u.onset > reply.at:
            continue
        if word_error_rate(_meant(u.text), reply.prompt) <= MATCH_MAX_WER:
            return i
    return None


def _own_words_before(steps: list[LoggedStep], turn: int) -> set[str]:
    """The words Spine said in the turns before `turn`: what its echo could have put in that turn's prompt. Not
    the prompt's own answer: "I heard: And I'll be fine." made a misheard "And I'll be fine." look like echo."""
    return {
        w for s in steps for c in s.commands if isinstance(c, cmd.StartTts) and c.turn < turn for w in words(c.text)
    }


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
    after = round(HEARD_AFTER_S * RATE_HZ)

    def lies_in(u: Utterance, earliest: int, latest: int) -> bool:
        # A mic sample mapped between `earliest` and `latest` (`heard_within`) may lie in utterance `u`: from a
        # little before its first sample to the end of the endpoint silence after it, however late hearing got to it.
        return u.onset - before <= latest and earliest <= u.end + after

    def sounding_user(earliest: int, latest: int) -> bool:
        # From the mic sample that caused a decision: it was the user's if it may lie in an utterance.
        return any(lies_in(u, earliest, latest) for u in utterances)

    used: set[int] = set()
    self_replies: list[dict[str, Any]] = []
    answered_by: dict[int, Reply] = {}
    for reply in asked:
        i = _licensed(reply, utterances, used)
        if i is None:
            said = words(reply.prompt)
            own = _own_words_before(steps, reply.turn)
            echo = bool(said) and sum(w in own for w in said) / len(said) > 0.5
            self_replies.append({"at_s": _s(reply.at), "prompt": reply.prompt, "cause": "echo" if echo else "misheard"})
        else:
            used.add(i)
            answered_by[i] = reply

    to_recording = mic_offsets(steps, utterances, offset)
    wake_heard = [
        heard_within(s.event.at_sample, to_recording, offset)
        for s in steps
        if isinstance(s.event, ev.WakeDetected) and not s.event.in_own_speech
    ]
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
            # Said over the story, the wake word was heard (its end fell within the talk-over), or None: none said.
            "wake_heard": any(lies_in(u, early, late) for early, late in wake_heard)
            if WAKE_AT_START.match(u.text)
            else None,
            "honoured": interrupted
            and (
                not answered
                if stop
                else any(word_error_rate(_meant(u.text), r.prompt) <= MATCH_MAX_WER for r in answered)
            ),
        }
        conversations.append(row)

    unexplained = [
        d for d in made if d.kind in ("pause", "cut") and not sounding_user(*_cause_within(d, to_recording, offset))
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
        "xruns_logged": sum(s.event.underflows + s.event.overflows for s in steps if isinstance(s.event, ev.AudioXrun)),
        "latency_raises": sum(1 for s in steps if isinstance(s.event, ev.AudioLatencyRaised)),
        "latency_lowerings": sum(1 for s in steps if isinstance(s.event, ev.AudioLatencyLowered)),
    }


def _cause_within(d: Decision, to_recording: list[tuple[int, int]], offset: int) -> tuple[int, int]:
    """The recording samples the mic sample that caused decision `d` lies between (`heard_within`), and no later
    than the decision became audible."""
    if d.heard is None:
        return d.at, d.at
    earliest, latest = heard_within(d.heard, to_recording, offset)
    return earliest, max(earliest, min(latest, d.at))


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


ECHO_WINDOW_S = 1.0
"""How far before the user's onset the assistant's level is measured."""
ACTIVE_RANGE_DB = 20.0
"""A 10 ms frame counts towards a voice's active level when it is within this much of the window's loudest."""


def _echo_to_user_db(left: npt.NDArray[np.int16], right: npt.NDArray[np.int16], u: Utterance) -> float | None:
    """The assistant's active level at the mic in the second before the onset over the user's, in dB.

    Active levels (the mean power of the frames within `ACTIVE_RANGE_DB` of the loudest), as the simulated suite
    measures them: a plain mean over the window read a pause between two sentences of the story as a quiet echo
    (-24.5 dB in a 0 dB room, under load, where the pauses stretch)."""
    echo = _active_power(left[max(u.onset - round(ECHO_WINDOW_S * RATE_HZ), 0) : u.onset])
    user = _active_power(right[u.onset : u.end])
    return round(10 * np.log10(echo / user), 1) if echo > 0 and user > 0 else None


def _active_power(audio: npt.NDArray[np.int16]) -> float:
    frame = RATE_HZ // 100
    frames = len(audio) // frame
    if frames == 0:
        return 0.0
    powers = (audio[: frames * frame].astype(np.float64).reshape(frames, frame) ** 2).mean(axis=1)
    loudest = float(powers.max())
    return float(powers[powers >= loudest * 10 ** (-ACTIVE_RANGE_DB / 10)].mean()) if loudest > 0 else 0.0


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
    result["rss_mb"] = [[int(at), float(mb)] for at, mb in meta.get("rss_mb", [])]
    result["minutes_planned"] = meta.get("minutes")
    result["recorded_s"] = round(len(recording) / RATE_HZ, 1)
    result["log_bytes"] = (directory / "events.jsonl").stat().st_size
    result["directory"] = str(directory)
    return result
