"""How the assistant behaved when talked over, from the ground truth of a simulated run.

Sources: the playback decisions in the event log (pause, resume, cut, each with its sample time), what the
speaker really played (per sample, its playback epoch; chimes already removed), when the user really spoke,
with the user's and the echo's levels at the mic kept apart by the virtual card, and every reply the spine
asked for with the audio window its transcript came from.

Every scripted utterance is addressed to the assistant, so every talk-over is honoured or missed, whatever its
length: a short "stop" that nothing noticed is the failure users hate most, and it must show.

| measure               | definition                                                                           |
|-----------------------|--------------------------------------------------------------------------------------|
| talk-over             | a user utterance that starts while the speaker plays an epoch (a reply, not a chime) |
| into_answer_s         | its onset - the first sample of that epoch                                           |
| onset_to_silence_ms   | its onset -> the first sample after it at which that epoch no longer plays           |
| interrupted           | the epoch was cut while the utterance sounded (or within `DECISION_GRACE_S` after)   |
| stop_phrase           | the utterance says a stop phrase (the machine's own definition, on the script)       |
| answered              | a reply was asked for with a transcript whose audio window overlaps the utterance    |
| spoken_after_s        | assistant audio (chimes excepted) after the cut, up to the next utterance or the end |
| honoured              | interrupted; for a stop phrase also not answered and nothing spoken after            |
| missed                | every talk-over not honoured                                                         |
| self-interruption     | a pause / cut with no utterance sounding (from `SOUNDING_BEFORE_S` before it)        |
| false resume          | a resume while a talk-over still sounds (a real interruption was dropped)            |
| self-reply            | a reply asked for with a transcript whose audio window holds no user utterance       |
| echo_to_user_db       | the echo's active level around the onset over the user's active level (see below)    |
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from device.core import commands as cmd
from device.core import events as ev
from device.core.memory import is_stop_phrase
from device.core.states import DEFAULT_STOP_PHRASES
from device.rates import SPINE_RATE_HZ as RATE_HZ
from device.runtime.eventlog import LoggedStep
from device.sim.card import Utterance

SOUNDING_BEFORE_S = 0.3
"""A decision counts as caused by an utterance that started at most this long after it (the hint comes
from the first 64 ms of voice, but a loud user also lifts the noise floor a little before the scripted onset)
or that had not ended more than this long before it."""
DECISION_GRACE_S = 1.0
"""A cut this long after the utterance ended still counts as its interruption (endpointing takes time)."""
ECHO_BEFORE_S = 1.0
ECHO_AFTER_S = 0.5
"""The echo the user talks against: its active level from `ECHO_BEFORE_S` before the onset to `ECHO_AFTER_S`
after it. After the onset too: at an onset 0.3 s into the answer with a 300 ms echo path, no echo has reached
the mic before it. When no period of that window is active (a cut faster than the echo path), the whole
answer's echo is used."""
ACTIVE_MIN_ENERGY = 1e4
"""A 10 ms period is active (the source is sounding) above -50 dBFS RMS: above the scenes' usual noise
(-60 dBFS) and below the quietest echo they script (about -37 dBFS). Levels are means over active periods, so
the pauses between words (and an echo path's silent start) do not make a source look quieter than it sounds.
ERLE uses the same floor: the noise bounds the ERLE a quiet echo can show (the cleaned signal keeps it)."""
ECHO_MIN_ENERGY = ACTIVE_MIN_ENERGY
LEVEL_PERIOD_SAMPLES = RATE_HZ // 100

Samples = npt.NDArray[np.float32]
Epochs = npt.NDArray[np.int32]


@dataclass(frozen=True)
class Decision:
    at_sample: int
    epoch: int
    kind: str  # "pause", "resume" or "cut"


@dataclass(frozen=True)
class AskedReply:
    """A reply the spine asked for (`StartReply`): its transcript and the mic audio that transcript came from."""

    turn: int
    at_sample: int
    transcript: str
    from_sample: int | None  # None: no transcription of this turn was ever started (no audio behind it at all)
    to_sample: int | None


def decisions(steps: list[LoggedStep]) -> list[Decision]:
    out: list[Decision] = []
    for step in steps:
        if isinstance(step.event, ev.StopRequested):
            continue  # the end of the run cuts what plays: not a decision about the user
        for command in step.commands:
            if isinstance(command, cmd.PausePlayback):
                out.append(Decision(step.t, command.epoch, "pause"))
            elif isinstance(command, cmd.ResumePlayback):
                out.append(Decision(step.t, command.epoch, "resume"))
            elif isinstance(command, cmd.CutPlayback):
                out.append(Decision(step.t, command.epoch, "cut"))
    return out


def _sounding(utterances: list[Utterance], at: int) -> list[Utterance]:
    margin = round(SOUNDING_BEFORE_S * RATE_HZ)
    return [u for u in utterances if u.start_sample - margin <= at <= u.end_sample + margin]


def _energy(track: npt.NDArray[Any], start: int, end: int) -> float:
    """Mean square of `track[start:end]` (converted after slicing: the tracks are minutes long)."""
    part = track[max(start, 0) : max(end, 0)].astype(np.float64)
    return float(np.mean(part * part)) if len(part) else 0.0


def active_energy(track: npt.NDArray[Any], start: int, end: int) -> float | None:
    """Mean square over the 10 ms periods of `track[start:end]` louder than `ACTIVE_MIN_ENERGY`; None if none is."""
    part = track[max(start, 0) : max(end, 0)].astype(np.float64)
    whole = len(part) - len(part) % LEVEL_PERIOD_SAMPLES
    if whole == 0:
        return None
    per_period = np.mean((part[:whole] ** 2).reshape(-1, LEVEL_PERIOD_SAMPLES), axis=1)
    active = per_period[per_period > ACTIVE_MIN_ENERGY]
    return float(np.mean(active)) if len(active) else None


def _db(ratio: float) -> float | None:
    return round(10 * math.log10(ratio), 1) if ratio > 0 and math.isfinite(ratio) else None


def echo_to_user_db(u: Utterance, epochs: Epochs, epoch: int, user: Samples, echo: Samples) -> float | None:
    """The echo's active level around the onset over the user's active level over the utterance, dB."""
    voice = active_energy(user, u.start_sample, u.end_sample)
    near = active_energy(
        echo, u.start_sample - round(ECHO_BEFORE_S * RATE_HZ), u.start_sample + round(ECHO_AFTER_S * RATE_HZ)
    )
    if near is None:
        played = np.flatnonzero(epochs == epoch)
        if len(played):  # the echo lags the speaker by the path's delay: look up to a second past the last sample
            near = active_energy(echo, int(played[0]), int(played[-1]) + RATE_HZ)
    if voice is None or near is None:
        return None
    return _db(near / voice)


def _overlaps(reply: AskedReply, start: int, end: int) -> bool:
    if reply.from_sample is None or reply.to_sample is None:
        return False
    return reply.from_sample < end and start < reply.to_sample


def self_replies(replies: list[AskedReply], utterances: list[Utterance]) -> list[AskedReply]:
    """Replies asked for on audio that holds no user utterance: the assistant answering itself."""
    return [r for r in replies if not any(_overlaps(r, u.start_sample, u.end_sample) for u in utterances)]


def analyse(
    steps: list[LoggedStep],
    utterances: list[Utterance],
    epochs: Epochs,
    user: Samples,
    echo: Samples,
    replies: list[AskedReply] | None = None,
    stop_phrases: tuple[str, ...] = DEFAULT_STOP_PHRASES,
) -> dict[str, Any]:
    """The barge-in measures of one run (see the table above). `epochs` has the chimes removed (0)."""
    made = decisions(steps)
    asked = replies or []
    talk_overs: list[dict[str, Any]] = []
    for index, u in enumerate(utterances):
        epoch = int(epochs[u.start_sample]) if u.start_sample < len(epochs) else 0
        if epoch == 0:
            continue
        first_played = int(np.flatnonzero(epochs == epoch)[0])
        after = np.flatnonzero(epochs[u.start_sample :] != epoch)
        silence = u.start_sample + int(after[0]) if len(after) else None
        grace = u.end_sample + round(DECISION_GRACE_S * RATE_HZ)
        cut = next((d for d in made if d.kind == "cut" and d.epoch == epoch and u.start_sample <= d.at_sample), None)
        interrupted = cut is not None and cut.at_sample <= grace
        resumed = [d for d in made if d.kind == "resume" and d.epoch == epoch and u.start_sample <= d.at_sample]
        stop = is_stop_phrase(u.text, stop_phrases)
        answered = any(_overlaps(r, u.start_sample, u.end_sample) for r in asked)
        # What the assistant said after it fell silent for this talk-over, until the user spoke again.
        until = utterances[index + 1].start_sample if index + 1 < len(utterances) else len(epochs)
        spoken_after = int(np.count_nonzero(epochs[silence:until])) if interrupted and silence is not None else None
        honoured = interrupted and (not stop or (not answered and spoken_after == 0))
        talk_overs.append(
            {
                "text": u.text,
                "onset_s": round(u.start_sample / RATE_HZ, 3),
                "duration_s": round((u.end_sample - u.start_sample) / RATE_HZ, 3),
                "epoch": epoch,
                "into_answer_s": round((u.start_sample - first_played) / RATE_HZ, 3),
                "echo_to_user_db": echo_to_user_db(u, epochs, epoch, user, echo),
                "stop_phrase": stop,
                "interrupted": interrupted,
                "answered": answered,
                "spoken_after_s": None if spoken_after is None else round(spoken_after / RATE_HZ, 3),
                "honoured": honoured,
                "cut_s": round(cut.at_sample / RATE_HZ, 3) if cut is not None and interrupted else None,
                "onset_to_silence_ms": (
                    round((silence - u.start_sample) * 1000 / RATE_HZ, 1) if silence is not None else None
                ),
                "false_resumes": sum(1 for d in resumed if d.at_sample <= u.end_sample),
            }
        )
    unexplained = [d for d in made if d.kind in ("pause", "cut") and not _sounding(utterances, d.at_sample)]
    selves = self_replies(asked, utterances)
    false_pauses = sum(1 for d in unexplained if d.kind == "pause")
    false_cancels = sum(1 for d in unexplained if d.kind == "cut")
    return {
        "talk_overs": talk_overs,
        "pauses": sum(1 for d in made if d.kind == "pause"),
        "resumes": sum(1 for d in made if d.kind == "resume"),
        "cuts": sum(1 for d in made if d.kind == "cut"),
        "false_pauses": false_pauses,
        "false_cancels": false_cancels,
        "self_interruptions": false_pauses + false_cancels,
        "self_interruptions_s": [round(d.at_sample / RATE_HZ, 3) for d in unexplained],
        "false_resumes": sum(t["false_resumes"] for t in talk_overs),
        "missed": sum(1 for t in talk_overs if not t["honoured"]),
        "stops": sum(1 for t in talk_overs if t["stop_phrase"]),
        "stops_honoured": sum(1 for t in talk_overs if t["stop_phrase"] and t["honoured"]),
        "stops_answered": sum(1 for t in talk_overs if t["stop_phrase"] and t["answered"]),
        "self_replies": [
            {"turn": r.turn, "asked_s": round(r.at_sample / RATE_HZ, 3), "transcript": r.transcript} for r in selves
        ],
    }


def erle_db(
    mic: npt.NDArray[np.int16],
    cleaned: npt.NDArray[np.int16],
    echo: Samples,
    user: Samples,
    from_sample: int,
    period_samples: int,
) -> float | None:
    """Echo return loss enhancement measured over echo-only periods from `from_sample` (after convergence):
    mic energy over cleaned energy, where the echo is well above the noise and the user is silent."""
    end = min(len(mic), len(cleaned), len(echo), len(user))
    mic_energy = cleaned_energy = 0.0
    for start in range(from_sample - from_sample % period_samples, end - period_samples + 1, period_samples):
        stop = start + period_samples
        if _energy(user, start, stop) > 0 or _energy(echo, start, stop) < ECHO_MIN_ENERGY:
            continue
        mic_energy += _energy(mic, start, stop)
        cleaned_energy += _energy(cleaned, start, stop)
    return _db(mic_energy / cleaned_energy) if cleaned_energy > 0 else None
