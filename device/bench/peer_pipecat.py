"""Spine's barge-in next to pipecat's, on the same audio: would a common framework's default interruption have
done better or worse on the echo suite's recordings?

pipecat (github.com/pipecat-ai/pipecat, PyPI `pipecat-ai`) interrupts the bot on voice activity alone: its
`SileroVADAnalyzer` with the default `VADParams` (confidence 0.7, start_secs 0.2, stop_secs 0.2, min_volume 0.6)
goes QUIET -> STARTING -> SPEAKING once 0.2 s of 32 ms windows in a row score speech and are loud enough; the
`VADController` reports speech started, the user aggregator broadcasts `VADUserStartedSpeakingFrame`, the default
`VADUserTurnStartStrategy` starts the user turn, and with interruptions on (the default) the aggregator broadcasts
the interruption on which the output transport drops its queued audio; the chunk being written (40 ms by
default) still plays. Its local audio transport has no echo canceller.

pipecat runs in a venv of its own (`ensure_peer_venv`, `out/peer-venv` or $SPINE_PEER_VENV), so its dependencies
never meet Spine's: device/bench/peer_pipecat_vad.py runs there as a script and reports when pipecat's VAD
switched to speaking in each WAV file (`run_pipecat_vad`). pipecat is an optional bench dependency: only this
comparison installs it.

`compare_echo_suite` reads a finished `spine bench echo --out DIR` (each `DIR/<scene>/aec/`: mic.wav, cleaned.wav,
speaker.wav, summary.json, events.jsonl) and gives pipecat's figures in two conditions: on the raw mic (pipecat's
default: no canceller) and on Spine's AEC3-cleaned mic (pipecat given the best canceller we have), with Spine's
own figures on the same scenes:
* talk-overs are Spine's (summary.json, device/sim/bargein.py): user utterances that start while an answer
  plays. pipecat interrupts at its first speech start that the user's voice can have caused: from
  `PipecatVad.user_min_start_s` (0.16 s: five of the six 32 ms windows SPEAKING needs) after the onset to
  `MISS_AFTER_S` after it, or to `USER_AFTER_S` after the utterance ended if sooner; none is a missed
  talk-over. A talk-over whose answer pipecat cut on a false barge-in before that is `preempted`, counted
  apart: pipecat was already cutting its answer on its own echo.
* onset -> silence: Spine counts from the user's first sample to the first sample at which the answer no longer
  plays at the speaker (its decision at a 10 ms period plus the gate's fade; the simulated card has no buffer
  after the gate). For pipecat: its speech start (the end of the 20 ms input chunk that completed it) minus the
  onset, plus one output chunk (`output_chunk_ms`, 40 ms): the chunk in flight when the interruption comes is
  written whole. That is its worst case (on average half of it is left), and pipecat's device buffer is not
  counted, as Spine's is not.
* a false barge-in: a speech start while an answer plays (its first to last sample at the speaker, from the event
  log and speaker.wav; chimes are not answers) that no user utterance can have caused (from `user_min_start_s`
  after its onset to `USER_AFTER_S` after its end). pipecat would have cut its own answer there.

Biases. The recordings are Spine's runs, which helps pipecat: once Spine cut (or paused) an answer the speaker
fell silent and the mic holds no more echo of it, where pipecat, had it missed that talk-over, would still be
playing and hearing itself. The other way: a false start would have cut pipecat's answer, yet the rest of it
still plays in the recording and can give more false starts, all counted in the rates (`answers_falsely_cut`
counts each answer once). Either way a pipecat session would have diverged at its first false barge-in: read the
raw-mic figures as how often pipecat's default cuts itself on this audio, not as a replay of a pipecat session.
The cleaned signal is what Spine's hearing gets, AEC3's delay (about 8 ms) included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.bench.echo_measures import GROUPS
from device.bench.tables import percentile
from device.core import commands as cmd
from device.core import events as ev
from device.errors import UserError
from device.rates import SPINE_RATE_HZ as RATE_HZ
from device.runtime.eventlog import LoggedStep, read_log
from device.sim.bargein import SOUNDING_BEFORE_S

PIPECAT_VERSION = "1.14.0"
"""The pipecat release the comparison was written against and tested with."""
PIPECAT_REQUIREMENT = f"pipecat-ai[silero]=={PIPECAT_VERSION}"
PEER_VENV_ENV = "SPINE_PEER_VENV"
DEFAULT_PEER_VENV = Path("out/peer-venv")
VAD_SCRIPT = Path(__file__).with_name("peer_pipecat_vad.py")

MISS_AFTER_S = 3.0
"""A talk-over with no speech start this long after its onset is missed."""
USER_AFTER_S = SOUNDING_BEFORE_S
"""A speech start up to this long after an utterance ended is still the user's (the same margin Spine's own
self-interruption count gives a decision)."""
CONDITIONS = {"raw": "mic.wav", "cleaned": "cleaned.wav"}
"""pipecat's input in each condition: what the mic heard, and the same after Spine's echo canceller."""
SECONDS_PER_HOUR = 3600.0


def peer_venv_path() -> Path:
    """Where pipecat's venv lives: $SPINE_PEER_VENV, else out/peer-venv."""
    return Path(os.environ.get(PEER_VENV_ENV) or DEFAULT_PEER_VENV)


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _has_pipecat(python: Path) -> bool:
    """The venv's interpreter has the pinned pipecat and Silero's runtime (looked up, not imported: fast)."""
    if not python.is_file():
        return False
    check = (
        "import importlib.metadata as m, importlib.util as u, sys; "
        f"sys.exit(0 if m.version('pipecat-ai') == {PIPECAT_VERSION!r} and u.find_spec('onnxruntime') else 1)"
    )
    return subprocess.run([str(python), "-c", check], capture_output=True, check=False).returncode == 0


def ensure_peer_venv(path: Path, say: Callable[[str], None] = print) -> Path:
    """The interpreter of a venv at `path` with pipecat installed: made (once) with `python -m venv` and pip.

    A venv already holding the pinned pipecat is used as it is. A failing step (no network, no PyPI) is a
    `UserError` saying how to go on; pip's output is kept in `path`/pip-install.log."""
    python = _venv_python(path)
    if _has_pipecat(python):
        return python
    if not python.is_file():
        say(f"peer venv: creating {path} for pipecat (once; it keeps pipecat's dependencies apart from Spine's)")
        made = subprocess.run([sys.executable, "-m", "venv", str(path)], capture_output=True, text=True, check=False)
        if made.returncode != 0:
            raise UserError(
                f"cannot create a venv for pipecat: {_last_line(made.stderr)}; give {PEER_VENV_ENV} a writable "
                "directory, or install python3-venv",
                where=str(path),
            )
    log_path = path / "pip-install.log"
    say(f"peer venv: installing {PIPECAT_REQUIREMENT} into {path} (a few minutes; pip's output: {log_path})")
    with log_path.open("w", encoding="utf-8") as log:
        pip = subprocess.run(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", PIPECAT_REQUIREMENT],
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if pip.returncode != 0 or not _has_pipecat(python):
        tail = _last_line(log_path.read_text(encoding="utf-8", errors="replace"))
        raise UserError(
            f"pip could not install {PIPECAT_REQUIREMENT} (exit {pip.returncode}: {tail}); the comparison with "
            f"pipecat needs PyPI once: run again with the network up, or point {PEER_VENV_ENV} at a venv that "
            f"already has {PIPECAT_REQUIREMENT} (its whole output: {log_path})",
            where=str(path),
        )
    say(f"peer venv: pipecat {PIPECAT_VERSION} ready in {path}")
    return python


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


@dataclass(frozen=True)
class PipecatVad:
    """What peer_pipecat_vad.py reported: pipecat's settings, and per WAV file the times its VAD switched to
    SPEAKING (`starts_s`, where pipecat interrupts) and back to QUIET (`stops_s`), seconds from the file's start."""

    version: str
    vad_params: dict[str, float]
    window_samples: int
    input_chunk_ms: float
    output_chunk_ms: float
    starts_s: dict[Path, list[float]]
    stops_s: dict[Path, list[float]]

    @property
    def user_min_start_s(self) -> float:
        """The earliest a speech start can follow a voice's onset on that voice alone: SPEAKING needs
        `start_secs` of windows in a row that score speech (6 of 32 ms), and the window the onset falls in may
        be one of them; a start sooner needs a window that held no user voice (the echo's)."""
        window_s = self.window_samples / RATE_HZ
        return round((round(self.vad_params["start_secs"] / window_s) - 1) * window_s, 4)


def run_pipecat_vad(python: Path, wavs: Sequence[Path]) -> PipecatVad:
    """pipecat's SileroVADAnalyzer (default params, 16 kHz, 20 ms input chunks) over each 16 kHz mono int16 WAV
    file, in the peer venv's `python`. Its per-file progress goes to stderr as it runs."""
    if not wavs:
        raise ValueError("no WAV files to analyse")
    env = os.environ | {"LOGURU_LEVEL": "WARNING"}  # pipecat logs each analyzer's parameters at debug level
    with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
        done = subprocess.run([str(python), str(VAD_SCRIPT), *map(str, wavs)], stdout=out, env=env, check=False)
        out.seek(0)
        text = out.read()
    if done.returncode != 0:
        raise UserError(f"pipecat's VAD failed (exit {done.returncode}; its messages are above)", where=str(python))
    result = json.loads(text.strip().splitlines()[-1])
    files = {Path(f["path"]): f for f in result["files"]}
    return PipecatVad(
        version=str(result["pipecat_version"]),
        vad_params={str(k): float(v) for k, v in result["vad_params"].items()},
        window_samples=int(result["window_samples"]),
        input_chunk_ms=result["input_chunk_samples"] * 1000 / RATE_HZ,
        output_chunk_ms=float(result["output_chunk_ms"]),
        starts_s={path: [float(t) for t in files[path]["starts_s"]] for path in map(Path, wavs)},
        stops_s={path: [float(t) for t in files[path]["stops_s"]] for path in map(Path, wavs)},
    )


@dataclass(frozen=True)
class Answer:
    """One answer as it sounded at the speaker: its first and last sample, in seconds."""

    epoch: int
    start_s: float
    end_s: float


def answers_played(steps: Sequence[LoggedStep], speaker: npt.NDArray[np.int16]) -> list[Answer]:
    """Each answer's span at the speaker: from `OpenPlayback` to its `PlaybackDrained`/`PlaybackStopped` (or the
    next epoch opened: an answer or a chime; or the end of the run), narrowed to the samples that sounded."""
    opened: dict[int, int] = {}
    ended: dict[int, int] = {}
    epoch_starts: list[int] = []
    for step in steps:
        if isinstance(step.event, ev.PlaybackDrained | ev.PlaybackStopped):
            ended.setdefault(step.event.epoch, step.t)
        for command in step.commands:
            if isinstance(command, cmd.OpenPlayback):
                opened[command.epoch] = step.t
                epoch_starts.append(step.t)
            elif isinstance(command, cmd.PlayEarcon):
                epoch_starts.append(step.t)
    out = []
    for epoch, open_sample in sorted(opened.items()):
        end_sample = min([ended.get(epoch, len(speaker))] + [s for s in epoch_starts if s > open_sample])
        sounded = np.flatnonzero(speaker[open_sample:end_sample])
        if len(sounded):
            first, last = open_sample + int(sounded[0]), open_sample + int(sounded[-1])
            out.append(Answer(epoch, round(first / RATE_HZ, 4), round((last + 1) / RATE_HZ, 4)))
    return out


def _playing(answers: Sequence[Answer], t_s: float) -> Answer | None:
    return next((a for a in answers if a.start_s <= t_s <= a.end_s), None)


def _users(summary: dict[str, Any]) -> list[tuple[float, float]]:
    return [(float(u["start_s"]), float(u["end_s"])) for u in summary["utterances"]]


def pipecat_on_scene(
    summary: dict[str, Any],
    answers: Sequence[Answer],
    starts_s: Sequence[float],
    output_chunk_ms: float,
    user_min_start_s: float,
) -> dict[str, Any]:
    """pipecat's barge-in in one run, from its speech starts on that run's audio (see the module docstring):
    `false_barge_ins_s` and, for each of Spine's talk-overs in order, its outcome (`interrupted`, `missed` or
    `preempted`) with `start_s`, `onset_to_decision_ms` and `onset_to_silence_ms` when interrupted. A start is a
    user's from `user_min_start_s` after the utterance's onset to `USER_AFTER_S` after its end."""
    users = _users(summary)
    false_starts: list[tuple[float, int]] = []  # (time, epoch)
    for t_s in starts_s:
        answer = _playing(answers, t_s)
        if answer is not None and not any(
            start + user_min_start_s <= t_s <= end + USER_AFTER_S for start, end in users
        ):
            false_starts.append((t_s, answer.epoch))
    talk_overs = []
    for talk in summary["interruptions"]["talk_overs"]:
        onset_s = float(talk["onset_s"])
        until_s = min(onset_s + MISS_AFTER_S, onset_s + float(talk["duration_s"]) + USER_AFTER_S)
        first = next((t for t in starts_s if onset_s + user_min_start_s <= t <= until_s), None)
        row: dict[str, Any] = {"start_s": None, "onset_to_decision_ms": None, "onset_to_silence_ms": None}
        if any(epoch == talk["epoch"] and t < onset_s + user_min_start_s for t, epoch in false_starts):
            row["outcome"] = "preempted"
        elif first is None:
            row["outcome"] = "missed"
        else:
            decision_ms = round((first - onset_s) * 1000, 1)
            row |= {
                "outcome": "interrupted",
                "start_s": first,
                "onset_to_decision_ms": decision_ms,
                "onset_to_silence_ms": round(decision_ms + output_chunk_ms, 1),
            }
        talk_overs.append(row)
    return {
        "false_barge_ins_s": [t for t, _ in false_starts],
        "answers_falsely_cut": len({epoch for _, epoch in false_starts}),
        "talk_overs": talk_overs,
    }


def _spine_on_scene(summary: dict[str, Any], answers: Sequence[Answer]) -> dict[str, Any]:
    """Spine's own figures of a run, in the shape `pipecat_on_scene` gives pipecat's (its false barge-ins are
    pauses and cuts with no user sounding: device/sim/bargein.py)."""
    falsely = {_playing(answers, float(t)) for t in summary["interruptions"]["self_interruptions_s"]}
    talks = summary["interruptions"]["talk_overs"]
    rows = [
        {
            "outcome": "interrupted" if t["interrupted"] else "missed",
            "honoured": t["honoured"],
            "onset_to_silence_ms": t["onset_to_silence_ms"] if t["interrupted"] else None,
        }
        for t in talks
    ]
    return {
        "false_barge_ins": int(summary["false_barge_ins"]),
        "answers_falsely_cut": len(falsely - {None}),
        "talk_overs": rows,
    }


def _group(level_db: float | None) -> str:
    """The echo-level group of echo_measures.GROUPS a talk-over falls in (no echo measured: the user is louder)."""
    level = level_db if level_db is not None else -99.0
    return next(key for key, _, upto_db, _ in GROUPS if level <= upto_db)


def _latency(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50": percentile(values, 0.5), "p95": percentile(values, 0.95)}


def _aggregate(scenes: list[dict[str, Any]], side: str) -> dict[str, Any]:
    """The figures of one side (`spine`, `raw`, `cleaned`) over the scene rows."""
    talks = [(t, t[side]) for s in scenes for t in s["talk_overs"]]
    speech_s = sum(s["assistant_speech_s"] for s in scenes)
    only = [s for s in scenes if not s["talk_overs"]]
    only_speech_s = sum(s["assistant_speech_s"] for s in only)

    def false(rows: list[dict[str, Any]]) -> int:
        return sum(s["false_barge_ins"][side] for s in rows)

    def per_hour(count: int, seconds: float) -> float | None:
        return round(count * SECONDS_PER_HOUR / seconds, 1) if seconds > 0 else None

    latency = [float(r["onset_to_silence_ms"]) for _, r in talks if r["outcome"] == "interrupted"]
    honoured = {"not_honoured": sum(1 for _, r in talks if not r["honoured"])} if side == "spine" else {}
    return honoured | {
        "talk_overs": len(talks),
        "interrupted": sum(1 for _, r in talks if r["outcome"] == "interrupted"),
        "missed": sum(1 for _, r in talks if r["outcome"] == "missed"),
        "preempted": sum(1 for _, r in talks if r["outcome"] == "preempted"),
        "onset_to_silence_ms": _latency(latency),
        "onset_to_silence_ms_by_echo_level": {
            key: _latency(
                [
                    float(r["onset_to_silence_ms"])
                    for t, r in talks
                    if r["outcome"] == "interrupted" and _group(t["echo_to_user_db"]) == key
                ]
            )
            for key, _, _, _ in GROUPS
        },
        "false_barge_ins": false(scenes),
        "false_barge_ins_per_hour": per_hour(false(scenes), speech_s),
        "echo_only_false_barge_ins": false(only),
        "echo_only_false_barge_ins_per_hour": per_hour(false(only), only_speech_s),
        "answers": sum(s["answers"] for s in scenes),
        "answers_falsely_cut": sum(s["answers_falsely_cut"][side] for s in scenes),
    }


def _read_wav(path: Path) -> npt.NDArray[np.int16]:
    try:
        with wave.open(str(path), "rb") as source:
            if (source.getframerate(), source.getnchannels(), source.getsampwidth()) != (RATE_HZ, 1, 2):
                raise UserError("expected 16 kHz mono 16-bit audio", where=str(path))
            return np.frombuffer(source.readframes(source.getnframes()), dtype="<i2").astype(np.int16)
    except (OSError, wave.Error, EOFError) as error:
        raise UserError(f"cannot read audio: {error}", where=str(path)) from None


def scene_runs(suite_dir: Path) -> list[Path]:
    """The AEC-on run directories of a finished `spine bench echo --out suite_dir`, by scene name."""
    runs = sorted(path.parent for path in suite_dir.glob("*/aec/summary.json"))
    if not runs:
        raise UserError("no finished echo-suite runs (<scene>/aec/summary.json) here: give `spine bench echo`'s "
                        "--out directory", where=str(suite_dir))  # fmt: skip
    return runs


def compare_echo_suite(suite_dir: Path, python: Path, say: Callable[[str], None] = print) -> dict[str, Any]:
    """pipecat's barge-in figures on every run of a finished echo suite, raw mic and AEC3-cleaned, with
    Spine's on the same scenes. `python`: the peer venv's interpreter (`ensure_peer_venv`).

    Returns `{"pipecat": its version and settings, "method": what is counted, "spine"|"raw"|"cleaned":
    aggregates, "scenes": per-scene rows}`; an aggregate has talk-overs, interrupted, missed, preempted,
    onset -> silence (n, p50, p95 in ms; also by echo level), false barge-ins and their rate per hour of
    assistant speech (all scenes, and the echo-only ones: those without a talk-over), and the answers that had
    at least one (a count unaffected by a cut answer playing on in the recording)."""
    runs = scene_runs(suite_dir)
    wavs = [run / name for run in runs for name in CONDITIONS.values()]
    say(f"pipecat: VAD over {len(wavs)} files of {len(runs)} scenes (raw mic and AEC3-cleaned)")
    vad = run_pipecat_vad(python, wavs)
    scenes = []
    for run in runs:
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
        answers = answers_played(read_log(run / "events.jsonl").steps, _read_wav(run / "speaker.wav"))
        spine = _spine_on_scene(summary, answers)
        sides = {
            side: pipecat_on_scene(
                summary, answers, vad.starts_s[run / name], vad.output_chunk_ms, vad.user_min_start_s
            )
            for side, name in CONDITIONS.items()
        }
        talk_overs = [
            {
                "text": talk["text"],
                "onset_s": talk["onset_s"],
                "into_answer_s": talk["into_answer_s"],
                "echo_to_user_db": talk["echo_to_user_db"],
                "spine": spine["talk_overs"][index],
            }
            | {side: sides[side]["talk_overs"][index] for side in CONDITIONS}
            for index, talk in enumerate(summary["interruptions"]["talk_overs"])
        ]
        scenes.append(
            {
                "scene": run.parent.name,
                "assistant_speech_s": float(summary["assistant_speech_s"]),
                "answers": len(answers),
                "talk_overs": talk_overs,
                "false_barge_ins": {"spine": spine["false_barge_ins"]}
                | {side: len(sides[side]["false_barge_ins_s"]) for side in CONDITIONS},
                "false_barge_ins_s": {side: sides[side]["false_barge_ins_s"] for side in CONDITIONS},
                "answers_falsely_cut": {"spine": spine["answers_falsely_cut"]}
                | {side: sides[side]["answers_falsely_cut"] for side in CONDITIONS},
            }
        )
    return {
        "pipecat": {
            "version": vad.version,
            "vad": "SileroVADAnalyzer",
            "vad_params": vad.vad_params,
            "window_samples": vad.window_samples,
            "input_chunk_ms": vad.input_chunk_ms,
            "output_chunk_ms": vad.output_chunk_ms,
        },
        "method": {
            "miss_after_s": MISS_AFTER_S,
            "user_after_s": USER_AFTER_S,
            "user_min_start_s": vad.user_min_start_s,
            "onset_to_silence": "pipecat: speech start - onset + output_chunk_ms; spine: onset -> first sample "
            "the answer no longer plays",
        },
        "spine": _aggregate(scenes, "spine"),
        **{side: _aggregate(scenes, side) for side in CONDITIONS},
        "scenes": scenes,
    }
