"""What `timeline.png` shows, before any drawing: a run's files read (event log, mic and speaker waves, summary)
and shaped for the panels (waveform envelopes, state, gate and breaker spans, labels placed in rows).

The log is read as plain JSON rather than decoded into the core's dataclasses: the picture needs a handful of
fields, and should still draw a log whose vocabulary has moved on. Drawing: device/sim/plot.py.
"""

from __future__ import annotations

import dataclasses
import json
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.errors import UserError
from device.rates import SPINE_RATE_HZ as DEFAULT_RATE_HZ  # for a log whose header has no rate

# Min/max pairs per column: more columns than the widest panel has pixels, so the envelope looks exactly
# like the full waveform, while a 60 s run still plots ~2,400 points instead of ~a million.
ENVELOPE_COLUMNS = 2400
# The marker's offset in front of a label and a gap after it, in characters.
LABEL_MARGIN_CHARS = 2
# Below this many characters a shortened label says nothing ("u…"): it is left out, its span or marker stays.
MIN_LABEL_CHARS = 6


@dataclass(frozen=True)
class Step:
    """One logged step: the event that arrived at `t_s` and the outcome (state after it, commands)."""

    t_s: float
    event: dict[str, Any]
    state: str
    commands: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Wave:
    samples: npt.NDArray[np.float32]
    """In full-scale units: int16 divided by 32768."""
    rate_hz: int


@dataclass(frozen=True)
class Run:
    rate_hz: int
    steps: tuple[Step, ...]
    mic: Wave
    speaker: Wave
    summary: dict[str, Any]

    @property
    def duration_s(self) -> float:
        audio_s = max(w.samples.size / w.rate_hz for w in (self.mic, self.speaker))
        last_step_s = self.steps[-1].t_s if self.steps else 0.0
        return max(float(self.summary.get("duration_s", 0.0)), audio_s, last_step_s, 1e-3)


@dataclass(frozen=True)
class Label:
    x_s: float
    text: str
    colour: str = "black"


# ---------------------------------------------------------------------------------------------- reading


def load_run(out_dir: Path) -> Run:
    rate_hz, steps = read_events(out_dir / "events.jsonl")
    return Run(
        rate_hz=rate_hz,
        steps=steps,
        mic=read_wave(out_dir / "mic.wav"),
        speaker=read_wave(out_dir / "speaker.wav"),
        summary=_read_json_object(out_dir / "summary.json"),
    )


def read_events(path: Path) -> tuple[int, tuple[Step, ...]]:
    """The sample rate from the header and the steps; an event whose outcome is missing (a crash) is kept."""
    lines = _read_text(path, "event log").splitlines()
    if not lines:
        raise UserError("empty event log", where=str(path))
    rate_hz = _header_rate_hz(path, _parse_line(path, 1, lines[0]))
    steps: list[Step] = []
    pending: tuple[int, dict[str, Any]] | None = None  # an event line waiting for its outcome line
    for number, text in enumerate(lines[1:], start=2):
        record = _parse_line(path, number, text)
        try:
            if "event" in record:
                if pending is not None:  # the step before crashed: its outcome was never written
                    steps.append(Step(pending[0] / rate_hz, pending[1], "?", ()))
                pending = (int(record["t"]), dict(record["event"]))
            elif "state" in record and pending is not None:
                commands = tuple(dict(command) for command in record["commands"])
                steps.append(Step(pending[0] / rate_hz, pending[1], str(record["state"]), commands))
                pending = None
            else:
                raise UserError("an outcome without its event", where=f"{path}:{number}")
        except (KeyError, TypeError, ValueError) as error:
            raise UserError(f"bad record: {error!r}", where=f"{path}:{number}") from None
    if pending is not None:
        steps.append(Step(pending[0] / rate_hz, pending[1], "?", ()))
    return rate_hz, tuple(steps)


def _header_rate_hz(path: Path, header: dict[str, Any]) -> int:
    if "spine_log" not in header:
        raise UserError("not a spine event log (header line missing)", where=f"{path}:1")
    try:
        return int(header.get("core_config", {}).get("rate_hz", DEFAULT_RATE_HZ))
    except (AttributeError, TypeError, ValueError) as error:
        raise UserError(f"bad core_config in header: {error}", where=f"{path}:1") from None


def read_wave(path: Path) -> Wave:
    try:
        with wave.open(str(path), "rb") as reader:
            if reader.getsampwidth() != 2 or reader.getnchannels() != 1:
                raise UserError("expected 16-bit mono audio", where=str(path))
            frames = reader.readframes(reader.getnframes())
            rate_hz = reader.getframerate()
    except (OSError, wave.Error, EOFError) as error:
        raise UserError(f"cannot read audio: {error}", where=str(path)) from None
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    return Wave(samples, rate_hz)


def _read_json_object(path: Path) -> dict[str, Any]:
    return _parse_line(path, None, _read_text(path, "summary"))


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"no {what} here ({path.name} missing): run `spine demo` first", where=str(path)) from None
    except OSError as error:
        raise UserError(f"cannot read {what}: {error.strerror}", where=str(path)) from None


def _parse_line(path: Path, number: int | None, text: str) -> dict[str, Any]:
    where = f"{path}:{number}" if number is not None else str(path)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"not JSON: {error.msg}", where=where) from None
    if not isinstance(value, dict):
        raise UserError("expected a JSON object", where=where)
    return value


# ---------------------------------------------------------------------------------------------- shaping


Floats = npt.NDArray[np.float64]


def envelope(wave_: Wave, columns: int = ENVELOPE_COLUMNS) -> tuple[Floats, Floats, Floats]:
    """(time_s, low, high) per column: the min and max of the samples each column covers."""
    samples = wave_.samples
    if samples.size == 0:
        zero = np.zeros(1)
        return zero, zero, zero
    per_column = max(1, -(-samples.size // columns))  # ceiling division
    padded = np.pad(samples, (0, -samples.size % per_column), mode="edge").reshape(-1, per_column)
    time_s = np.arange(padded.shape[0]) * per_column / wave_.rate_hz
    return time_s, padded.min(axis=1).astype(np.float64), padded.max(axis=1).astype(np.float64)


def state_spans(steps: tuple[Step, ...], end_s: float) -> list[tuple[float, float, str]]:
    """(start_s, end_s, state) with neighbours of the same state merged; Idle before the first step."""
    spans: list[tuple[float, float, str]] = []
    current, since = "Idle", 0.0
    for step in steps:
        if step.state not in (current, "?"):
            spans.append((since, step.t_s, current))
            current, since = step.state, step.t_s
    spans.append((since, max(end_s, since), current))
    return [span for span in spans if span[1] > span[0]]


def gate_spans(steps: tuple[Step, ...], end_s: float) -> list[tuple[float, float, str]]:
    """(start_s, end_s, voice gate) from the `VoiceGateChanged` facts; "none" before the first."""
    spans: list[tuple[float, float, str]] = []
    current, since = "none", 0.0
    for step in steps:
        if step.event.get("type") == "VoiceGateChanged" and step.event.get("detector") != current:
            spans.append((since, step.t_s, current))
            current, since = str(step.event.get("detector")), step.t_s
    spans.append((since, max(end_s, since), current))
    return [span for span in spans if span[1] > span[0]]


def breaker_spans(steps: tuple[Step, ...], end_s: float) -> list[tuple[float, float]]:
    """(start_s, end_s) while the breaker held voice barge-in off (from its `VoiceBargeIn` commands)."""
    spans: list[tuple[float, float]] = []
    off_since: float | None = None
    for step in steps:
        for command in step.commands:
            if command.get("type") != "VoiceBargeIn":
                continue
            if not command.get("enabled") and off_since is None:
                off_since = step.t_s
            elif command.get("enabled") and off_since is not None:
                spans.append((off_since, step.t_s))
                off_since = None
    if off_since is not None:
        spans.append((off_since, max(end_s, off_since)))
    return spans


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: max(1, limit - 1)].rstrip() + "…"


def place_labels(labels: list[Label], seconds_per_char: float, rows: int, end_s: float) -> list[tuple[Label, int]]:
    """Give each label a row where it does not run into the label before it.

    A label takes the first row that is free at its time. When none is, it takes the row that frees first and
    the label before it there is shortened to make room: every label stays legible, none is drawn over another.
    Labels are also shortened to end before `end_s` (the right edge of the panel) rather than be clipped.
    """
    last_in_row: list[int | None] = [None] * rows  # index into `placed`
    placed: list[tuple[Label, int]] = []
    for label in sorted(labels, key=lambda item: item.x_s):
        ends = [_label_end(placed[i][0], seconds_per_char) if i is not None else float("-inf") for i in last_in_row]
        row = next((r for r in range(rows) if ends[r] <= label.x_s), min(range(rows), key=ends.__getitem__))
        before = last_in_row[row]
        if before is not None and ends[row] > label.x_s:
            shortened = _fit(placed[before][0], label.x_s - placed[before][0].x_s, seconds_per_char)
            placed[before] = (shortened, row)
        placed.append((_fit(label, end_s - label.x_s, seconds_per_char), row))
        last_in_row[row] = len(placed) - 1
    return placed


def _label_end(label: Label, seconds_per_char: float) -> float:
    return label.x_s + (len(label.text) + LABEL_MARGIN_CHARS) * seconds_per_char


def _fit(label: Label, room_s: float, seconds_per_char: float) -> Label:
    chars = room_s / seconds_per_char - LABEL_MARGIN_CHARS  # a float: `room_s` may be infinite
    if len(label.text) <= chars:
        return label
    return dataclasses.replace(label, text=shorten(label.text, int(chars)) if chars >= MIN_LABEL_CHARS else "")
