"""How the assistant behaved when talked over, from the ground truth of a simulated run.

Sources: the playback decisions in the event log (pause, resume, cut, each with its sample time), what the
speaker really played (per sample, its playback epoch) and when the user really spoke, with the user's and the
echo's levels at the mic kept apart by the virtual card.

| measure                 | definition                                                                         |
|-------------------------|------------------------------------------------------------------------------------|
| talk-over               | a user utterance that starts while the speaker plays an epoch                      |
| onset_to_silence_ms     | its onset -> the first sample after it at which that epoch no longer plays          |
| interrupted / missed    | the epoch was cut while the utterance sounded (or within `DECISION_GRACE_S` after) |
| missed (counted)        | talk-overs of at least `MISSED_MIN_S` that did not interrupt                        |
| false pause / cancel    | a pause / cut with no utterance sounding (from `SOUNDING_BEFORE_S` before it)       |
| false resume            | a resume while a talk-over still sounds (a real interruption was dropped)           |
| echo_to_user_db         | echo energy at the mic in the `ECHO_WINDOW_S` before the onset over the user's      |
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from device.config import RATE_HZ
from device.core import commands as cmd
from device.core import events as ev
from device.runtime.eventlog import LoggedStep
from device.sim.card import Utterance

SOUNDING_BEFORE_S = 0.3
"""A decision counts as caused by an utterance that started at most this long after it (the hint comes
from the first 64 ms of voice, but a loud user also lifts the noise floor a little before the scripted onset)
or that had not ended more than this long before it."""
DECISION_GRACE_S = 1.0
"""A cut this long after the utterance ended still counts as its interruption (endpointing takes time)."""
MISSED_MIN_S = 1.0
"""Talk-overs shorter than this are not counted as missed when they do not interrupt (a cough, "mm")."""
ECHO_WINDOW_S = 0.5
ECHO_MIN_ENERGY = 1e4
"""ERLE counts periods whose echo is above -50 dBFS RMS: above the scenes' usual noise (-60 dBFS). The noise
bounds the ERLE a quiet echo can show (the cleaned signal keeps the noise); loud periods dominate the sums."""

Samples = npt.NDArray[np.float32]
Epochs = npt.NDArray[np.int32]


@dataclass(frozen=True)
class Decision:
    at_sample: int
    epoch: int
    kind: str  # "pause", "resume" or "cut"


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


def _db(ratio: float) -> float | None:
    return round(10 * math.log10(ratio), 1) if ratio > 0 and math.isfinite(ratio) else None


def analyse(
    steps: list[LoggedStep], utterances: list[Utterance], epochs: Epochs, user: Samples, echo: Samples
) -> dict[str, Any]:
    """The barge-in measures of one run (see the table above)."""
    made = decisions(steps)
    window = round(ECHO_WINDOW_S * RATE_HZ)
    talk_overs: list[dict[str, Any]] = []
    for u in utterances:
        epoch = int(epochs[u.start_sample]) if u.start_sample < len(epochs) else 0
        if epoch == 0:
            continue
        after = np.flatnonzero(epochs[u.start_sample :] != epoch)
        silence = u.start_sample + int(after[0]) if len(after) else None
        grace = u.end_sample + round(DECISION_GRACE_S * RATE_HZ)
        cut = next((d for d in made if d.kind == "cut" and d.epoch == epoch and u.start_sample <= d.at_sample), None)
        interrupted = cut is not None and cut.at_sample <= grace
        resumed = [d for d in made if d.kind == "resume" and d.epoch == epoch and u.start_sample <= d.at_sample]
        talk_overs.append(
            {
                "text": u.text,
                "onset_s": round(u.start_sample / RATE_HZ, 3),
                "duration_s": round((u.end_sample - u.start_sample) / RATE_HZ, 3),
                "epoch": epoch,
                "echo_to_user_db": _db(
                    _energy(echo, u.start_sample - window, u.start_sample) / _energy(user, u.start_sample, u.end_sample)
                ),
                "interrupted": interrupted,
                "cut_s": round(cut.at_sample / RATE_HZ, 3) if cut is not None and interrupted else None,
                "onset_to_silence_ms": (
                    round((silence - u.start_sample) * 1000 / RATE_HZ, 1) if silence is not None else None
                ),
                "false_resumes": sum(1 for d in resumed if d.at_sample <= u.end_sample),
            }
        )
    unexplained = [d for d in made if d.kind in ("pause", "cut") and not _sounding(utterances, d.at_sample)]
    return {
        "talk_overs": talk_overs,
        "pauses": sum(1 for d in made if d.kind == "pause"),
        "resumes": sum(1 for d in made if d.kind == "resume"),
        "cuts": sum(1 for d in made if d.kind == "cut"),
        "false_pauses": sum(1 for d in unexplained if d.kind == "pause"),
        "false_cancels": sum(1 for d in unexplained if d.kind == "cut"),
        "false_resumes": sum(t["false_resumes"] for t in talk_overs),
        "missed": sum(1 for t in talk_overs if not t["interrupted"] and t["duration_s"] >= MISSED_MIN_S),
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
