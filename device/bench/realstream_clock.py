"""The real-stream bench's clocks: a session's recording and event log put on one time line.

The recording (left: what Spine played, right: the user's voice) gives which frames sound, the silences, and
when each utterance played into the room really began; the log's decisions, replies and the mic samples its
hearing events name are mapped onto the recording (by the wake chimes, and through the requests' voice
onsets for the mic). The measures made on that time line: device/bench/realstream_analysis.py.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from device.core import commands as cmd
from device.core import events as ev
from device.rates import SPINE_RATE_HZ as RATE_HZ  # the recording's rate and Spine's log clock (WallClock)
from device.runtime.eventlog import LoggedStep

FRAME_SAMPLES = 160
SOUND_LEVEL = 100
"""A 10 ms frame sounds when its peak exceeds this (-50 dBFS): the room is digital silence otherwise, and
Piper's quietest voiced frames are far above it."""
SILENT_RUN_S = 0.15
"""Silence shorter than this inside the story is a stop consonant or a breath, not the speaker falling silent."""

SOUNDING_BEFORE_S = 0.3
"""As in the simulated suite (device/sim/bargein.py): a decision up to this long before an utterance's first
sample counts as caused by it (the mapping of log time onto the recording is good to a few tens of ms)."""

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


def heard_within(heard: int, offsets: list[tuple[int, int]], fallback: int) -> tuple[int, int]:
    """The recording samples mic sample `heard` lies between: by the last request's mapping at or before it, and by
    the first after it. The capture only ever loses audio, so the mic count falls further behind the recording
    over a session and never catches up: audio lost between two requests moves the true position of a sample
    between them toward the later mapping (measured under load: 0.6 s lost between a request and the talk-over
    that followed it put the talk-over's own hint 0.55 s before the user's first sample)."""
    earliest = heard_at(heard, offsets, fallback)
    later = [o for m, o in offsets if m > heard]
    return earliest, max(earliest, heard + later[0]) if later else earliest


@dataclass(frozen=True)
class Reply:
    at: int  # recording sample
    turn: int
    prompt: str


def replies(steps: list[LoggedStep], offset: int) -> list[Reply]:
    return [Reply(s.t + offset, c.turn, c.prompt) for s in steps for c in s.commands if isinstance(c, cmd.StartReply)]
