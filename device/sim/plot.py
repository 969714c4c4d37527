"""`timeline.png`: one picture of a simulated run, read from the files `spine demo` leaves in its output dir.

Four panels share the time axis (seconds): the microphone with the user's ground-truth utterances, the
speaker with every barge-in cut, the machine's state over time, and the events that drove it (wake word,
speech onset/end, transcripts, what the user heard of each reply). Someone who never read the log should
see from it when the user spoke, what the device did about it, and how fast it stopped talking.

Inputs (all in `out_dir`): `events.jsonl` (see `device.runtime.eventlog`), `mic.wav` and `speaker.wav`
(mono int16) and `summary.json`. The log is read as plain JSON rather than decoded into the core's
dataclasses: the picture needs a handful of fields, and should still draw a log whose vocabulary has moved on.
Reading and shaping them: device/sim/plot_data.py; drawing: here.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from device.engines.earcon import NOTES, earcon_seconds
from device.sim.plot_data import (
    LABEL_MARGIN_CHARS,
    Label,
    Run,
    Step,
    Wave,
    breaker_spans,
    envelope,
    gate_spans,
    load_run,
    place_labels,
    shorten,
    state_spans,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIG_SIZE_IN = (16.0, 8.0)
DPI = 110


# Fixed colours per state, so the same state looks the same in every picture; quiet states are pale and
# the states in which the device talks or works are saturated, which is where the eye should go.
STATE_COLOURS: dict[str, str] = {
    "Idle": "#e6e6e6",
    "Listening": "#a6cee3",
    "Hearing": "#1f78b4",
    "Transcribing": "#b2df8a",
    "Thinking": "#33a02c",
    "Speaking": "#ff7f00",
    "Paused": "#cab2d6",
    "Announcing": "#fdbf6f",
    "Muted": "#6a3d9a",
    "Degraded": "#b15928",
    "Stopping": "#e31a1c",
    "Ringing": "#fb9a99",
}
UNKNOWN_STATE_COLOUR = "#999999"

# The strip under the states: how hearing tells the user from the echo while the assistant plays (the
# `VoiceGateChanged` facts), and red where the breaker suspended voice barge-in (`VoiceBargeIn` commands).
GATE_COLOURS: dict[str, str] = {
    "none": "#f2f2f2",
    "reference": "#fdd49e",
    "reference+canceller": "#8c6bb1",
    "exact-reference": "#fdae6b",
    "exact-reference+canceller": "#6a51a3",
}
GATE_LABELS: dict[str, str] = {
    "none": "voice barge-in not armed (not yet, or wake word only after an xrun)",
    "reference": "armed: played reference (raw mic)",
    "reference+canceller": "armed: played reference + canceller",
    "exact-reference": "armed: played reference at exactly the delay (raw mic)",
    "exact-reference+canceller": "armed: played reference at exactly the delay + canceller",
}
BREAKER_COLOUR = "#d62728"
_GATE_STRIP = (0.0, 0.28)

UTTERANCE_COLOUR = "#2ca02c"
CUT_COLOUR = "#d62728"
EARCON_COLOUR = "#17a2b8"
LABEL_FONT_PT = 8.0
# Measured: 8 pt DejaVu Sans text averages ~0.5 em per character; a little more keeps labels clear of each other.
CHAR_WIDTH_EM = 0.55
# Bold 9 pt text (the barge-in labels) is ~25% wider than the 8 pt the character width is measured for.
BOLD_WIDTH = 1.25


def render_timeline(out_dir: Path) -> Path:
    """Draw the run in `out_dir` into `out_dir / "timeline.png"` and return that path."""
    import matplotlib

    # Chosen here, not at import: importing this module must not change the backend of a caller's session.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = load_run(out_dir)
    fig = plt.figure(figsize=FIG_SIZE_IN, dpi=DPI)
    try:
        _draw(fig, run)
        path = out_dir / "timeline.png"
        fig.savefig(path, dpi=DPI)  # no bbox_inches="tight": the pixel size stays FIG_SIZE_IN x DPI
    finally:
        plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------- drawing


def _draw(fig: Figure, run: Run) -> None:
    grid = fig.add_gridspec(4, 1, height_ratios=[3.0, 3.0, 0.9, 2.4], hspace=0.12)
    fig.subplots_adjust(left=0.075, right=0.985, top=0.885, bottom=0.07)
    mic_ax = fig.add_subplot(grid[0])
    axes = [mic_ax, *(fig.add_subplot(grid[i], sharex=mic_ax) for i in (1, 2, 3))]
    duration_s = run.duration_s
    mic_ax.set_xlim(0.0, duration_s)
    seconds_per_char = _seconds_per_char(fig, mic_ax, duration_s)
    _draw_mic(axes[0], run, seconds_per_char)
    _draw_speaker(axes[1], run, seconds_per_char)
    _draw_states(axes[2], run, duration_s, seconds_per_char)
    _draw_events(axes[3], run, seconds_per_char)
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)
    axes[-1].set_xlabel("time (s)")
    for ax in axes:
        ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
    fig.suptitle(_title(run), fontsize=14, y=0.985)
    notes = [str(note) for note in run.summary.get("notes", [])]
    if notes:  # a run with nothing to measure says so, rather than leaving the reader to wonder at empty panels
        fig.text(0.5, 0.935, "; ".join(notes), ha="center", va="top", fontsize=LABEL_FONT_PT + 1, color=CUT_COLOUR)
    _legends(fig, run, duration_s)


def _seconds_per_char(fig: Figure, ax: Axes, duration_s: float) -> float:
    width_px = ax.get_position().width * fig.get_figwidth() * DPI
    char_px = LABEL_FONT_PT * CHAR_WIDTH_EM * DPI / 72.0
    return char_px * duration_s / width_px


def _title(run: Run) -> str:
    clock = run.summary.get("clock", "?")
    turns = len(run.summary.get("turns", []))
    barge_ins = len(run.summary.get("barge_ins", []))
    counts = f"{_count(turns, 'turn')}, {_count(barge_ins, 'barge-in')}"
    return f"Spine demo — {clock} clock — {counts} — {run.duration_s:.1f} s"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _draw_wave(ax: Axes, wave_: Wave, colour: str, name: str) -> None:
    time_s, low, high = envelope(wave_)
    ax.fill_between(time_s, low, high, color=colour, linewidth=0.4, step="post")
    # Symmetric limits with a floor: a near-silent track should look near-silent, not amplified to the rim.
    peak = max(0.05, float(np.max(np.abs(np.concatenate((low, high))))))
    ax.set_ylim(-1.3 * peak, 1.6 * peak)  # headroom above for the labels
    ax.set_ylabel(name, rotation=0, ha="right", va="center")
    ax.set_yticks([])


def _draw_mic(ax: Axes, run: Run, seconds_per_char: float) -> None:
    end_s = ax.get_xlim()[1]
    _draw_wave(ax, run.mic, "#9fb8d0", "microphone")
    labels = []
    for utterance in run.summary.get("utterances", []):
        start_s = float(utterance["start_s"])
        ax.axvspan(start_s, float(utterance["end_s"]), color=UTTERANCE_COLOUR, alpha=0.18, linewidth=0)
        labels.append(Label(start_s, "“" + shorten(str(utterance.get("text", "")), 44) + "”"))
    for label, row in place_labels(labels, seconds_per_char, rows=2, end_s=end_s):
        y = 0.95 - 0.11 * row
        ax.text(
            label.x_s,
            y,
            label.text,
            transform=ax.get_xaxis_transform(),
            fontsize=LABEL_FONT_PT,
            va="top",
            color="#1b5e20",
            clip_on=True,
        )


def _earcons(run: Run) -> list[tuple[float, str]]:
    return [
        (step.t_s, str(command.get("kind", "")))
        for step in run.steps
        for command in step.commands
        if command.get("type") == "PlayEarcon" and command.get("kind") in NOTES
    ]


def _draw_speaker(ax: Axes, run: Run, seconds_per_char: float) -> None:
    _draw_wave(ax, run.speaker, "#f2b27a", "speaker")
    for at_s, kind in _earcons(run):
        ax.axvspan(at_s, at_s + max(earcon_seconds(kind), seconds_per_char), color=EARCON_COLOUR, alpha=0.5, lw=0)
        ax.annotate(
            f"♪ {kind}",
            (at_s, 0.05),
            xycoords=ax.get_xaxis_transform(),
            xytext=(2, 0),
            textcoords="offset points",
            va="bottom",
            color=EARCON_COLOUR,
            fontsize=LABEL_FONT_PT,
        )
    labels = []
    for barge_in in run.summary.get("barge_ins", []):
        decision_s, cut_s = float(barge_in["decision_s"]), float(barge_in["cut_s"])
        onset_s = float(barge_in.get("truth_onset_s", decision_s))
        ax.axvline(onset_s, color=CUT_COLOUR, linestyle=":", linewidth=1.0)
        ax.axvline(decision_s, color=CUT_COLOUR, linewidth=1.4)
        # The cut lands within a few ms: widen its span to a few pixels or it vanishes at a minute per panel.
        ax.axvspan(decision_s, max(cut_s, decision_s + seconds_per_char), color=CUT_COLOUR, alpha=0.35, linewidth=0)
        ms = float(barge_in.get("onset_to_silence_ms", (cut_s - onset_s) * 1000.0))
        labels.append(Label(cut_s, f"✂ silent {ms:.0f} ms after onset", CUT_COLOUR))
    bold_seconds_per_char = seconds_per_char * BOLD_WIDTH
    cut_labels = _cut_labels_inside(labels, ax, bold_seconds_per_char)
    for label, row in place_labels(cut_labels, bold_seconds_per_char, rows=3, end_s=math.inf):
        ax.annotate(
            label.text,
            (label.x_s, 0.95 - 0.09 * row),
            xycoords=ax.get_xaxis_transform(),
            xytext=(4, 0),
            textcoords="offset points",
            va="top",
            color=label.colour,
            fontsize=LABEL_FONT_PT + 1,
            fontweight="bold",
        )


def _cut_labels_inside(labels: list[Label], ax: Axes, seconds_per_char: float) -> list[Label]:
    """Labels that would run past the right edge move to the left of their line: the number is never clipped."""
    width = [(len(label.text) + LABEL_MARGIN_CHARS) * seconds_per_char for label in labels]
    end_s = ax.get_xlim()[1]
    return [
        label if label.x_s + w <= end_s else dataclasses.replace(label, x_s=label.x_s - w)
        for label, w in zip(labels, width, strict=True)
    ]


def _draw_states(ax: Axes, run: Run, duration_s: float, seconds_per_char: float) -> None:
    # A state held for a few ms (Stopping, while the cut lands) would be thinner than a pixel and vanish;
    # drawn at least ~6 px wide it stays visible, overlapping its successor by a hair.
    min_width_s = seconds_per_char * 0.8
    for start_s, end_s, state in state_spans(run.steps, duration_s):
        colour = STATE_COLOURS.get(state, UNKNOWN_STATE_COLOUR)
        width_s = max(end_s - start_s, min_width_s)
        on_top = width_s > end_s - start_s  # a widened span is drawn over its successor
        bar = [(start_s, width_s)]
        ax.broken_barh(
            bar, (0.32, 0.68), facecolors=colour, edgecolor="white", linewidth=0.5, zorder=3 if on_top else 2
        )
    for start_s, end_s, gate in gate_spans(run.steps, duration_s):
        ax.broken_barh([(start_s, end_s - start_s)], _GATE_STRIP, facecolors=GATE_COLOURS.get(gate, "#999999"))
    breaker = [(start_s, end_s - start_s) for start_s, end_s in breaker_spans(run.steps, duration_s)]
    if breaker:
        ax.broken_barh(breaker, _GATE_STRIP, facecolors=BREAKER_COLOUR, zorder=4)
    ax.set_ylim(0.0, 1.0)
    ax.set_yticks([_GATE_STRIP[1] / 2, 0.66], ["voice gate", "state"])
    ax.tick_params(axis="y", length=0)


def _legends(fig: Figure, run: Run, duration_s: float) -> None:
    """One row under the title: the state colours on the left, the marks of the waveform panels on the right."""
    from matplotlib.artist import Artist
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    # The states of this run, in the order a turn goes through them, so the key reads like the story of a turn.
    seen = {state for _, _, state in state_spans(run.steps, duration_s)}
    names = [*(n for n in STATE_COLOURS if n in seen), *sorted(seen - STATE_COLOURS.keys())]
    states = [Patch(facecolor=STATE_COLOURS.get(n, UNKNOWN_STATE_COLOUR), edgecolor="#888888", label=n) for n in names]
    style: dict[str, Any] = {
        "fontsize": 9,
        "frameon": False,
        "handlelength": 1.4,
        "columnspacing": 1.0,
        "borderaxespad": 0.0,
    }
    fig.legend(handles=states, loc="upper left", bbox_to_anchor=(0.075, 0.952), ncol=len(states), **style)
    marks: list[Artist] = [Patch(color=UTTERANCE_COLOUR, alpha=0.18, label="user speaks (truth)")]
    if run.summary.get("barge_ins"):
        marks += [
            Line2D([], [], color=CUT_COLOUR, linestyle=":", label="user starts (truth)"),
            Line2D([], [], color=CUT_COLOUR, linewidth=1.4, label="barge-in decided"),
            Patch(color=CUT_COLOUR, alpha=0.35, label="until speaker silent"),
        ]
    if _earcons(run):
        marks.append(Patch(color=EARCON_COLOUR, alpha=0.5, label="earcon (chime)"))
    gates = {gate for _, _, gate in gate_spans(run.steps, duration_s)} - {"none"}
    marks += [Patch(color=GATE_COLOURS[g], label=GATE_LABELS[g]) for g in GATE_COLOURS if g in gates]
    if breaker_spans(run.steps, duration_s):
        marks.append(Patch(color=BREAKER_COLOUR, label="breaker: wake word only"))
    # The marks take a second row: with the states beside them they would overlap on a busy run.
    fig.legend(handles=marks, loc="upper right", bbox_to_anchor=(0.985, 0.922), ncol=len(marks), **style)


# Lanes of the event panel, top to bottom; the text lanes get two rows each so neighbouring labels can stagger.
_WAKE_Y, _SPEECH_Y, _TRANSCRIPT_Y, _HEARD_Y = 3.7, 2.9, 2.1, 1.05
_ROW_STEP = 0.42


def _draw_events(ax: Axes, run: Run, seconds_per_char: float) -> None:
    _draw_wakes(ax, run)
    _draw_speech_ticks(ax, run)
    transcripts, heard = _event_labels(run)
    _draw_label_lane(ax, transcripts, _TRANSCRIPT_Y, "D", seconds_per_char)
    _draw_label_lane(ax, heard, _HEARD_Y, "s", seconds_per_char)
    ax.set_ylim(0.4, 4.15)
    ax.set_yticks([_WAKE_Y, _SPEECH_Y, _TRANSCRIPT_Y, _HEARD_Y], ["wake", "speech", "transcript", "heard"])
    ax.tick_params(axis="y", length=0)


def _draw_wakes(ax: Axes, run: Run) -> None:
    for step in _steps_of(run, "WakeDetected"):
        ax.plot(step.t_s, _WAKE_Y, marker="v", color="#6a3d9a", markersize=8, linestyle="none")
        score = step.event.get("score")
        if isinstance(score, int | float):
            ax.annotate(
                f"{score:.2f}",
                (step.t_s, _WAKE_Y),
                xytext=(6, 0),
                textcoords="offset points",
                fontsize=LABEL_FONT_PT,
                va="center",
                color="#6a3d9a",
            )


def _draw_speech_ticks(ax: Axes, run: Run) -> None:
    # At the samples the detector reports, not at the steps: those line up with the ground truth above. A line
    # joins each start to its end, so the lane reads as "the device believed the user spoke from here to here".
    onsets = [_sample_s(run, step, "onset_sample") for step in _steps_of(run, "SpeechStarted")]
    ends = [_sample_s(run, step, "end_sample") for step in _steps_of(run, "SpeechEnded")]
    for onset_s, next_onset_s in zip(onsets, [*onsets[1:], math.inf][: len(onsets)], strict=True):
        end_s = next((e for e in ends if onset_s <= e <= next_onset_s), None)
        if end_s is not None:  # an onset without an end (the run stopped mid-utterance) keeps just its tick
            ax.plot([onset_s, end_s], [_SPEECH_Y, _SPEECH_Y], color="#1f78b4", linewidth=2.0, alpha=0.6)
    style: dict[str, Any] = {
        "linestyle": "none",
        "marker": "|",
        "markersize": 14,
        "markeredgewidth": 2.0,
        "color": "#1f78b4",
    }
    ax.plot(onsets, [_SPEECH_Y] * len(onsets), **style)
    ax.plot(ends, [_SPEECH_Y] * len(ends), **style)


def _sample_s(run: Run, step: Step, field: str) -> float:
    sample = step.event.get(field)
    return sample / run.rate_hz if isinstance(sample, int) else step.t_s


def _event_labels(run: Run) -> tuple[list[Label], list[Label]]:
    transcripts = [
        Label(step.t_s, "“" + shorten(str(step.event.get("text", "")), 40) + "”", "#1f4e79")
        for step in _steps_of(run, "TranscriptReady")
        if not any("outdated" in str(c.get("reason", "")) for c in step.commands)  # a pause the user spoke on past
    ]
    heard = []
    for step in run.steps:
        for command in step.commands:
            if command.get("type") == "CommitHeard":
                interrupted = bool(command.get("interrupted"))
                text = "heard: " + shorten(str(command.get("heard_text", "")), 36) + (" (cut)" if interrupted else "")
                heard.append(Label(step.t_s, text, CUT_COLOUR if interrupted else "#b35900"))
    return transcripts, heard


def _draw_label_lane(ax: Axes, labels: list[Label], lane_y: float, marker: str, seconds_per_char: float) -> None:
    end_s = ax.get_xlim()[1]
    for label, row in place_labels(labels, seconds_per_char, rows=2, end_s=end_s):
        y = lane_y - row * _ROW_STEP
        ax.plot(label.x_s, y, marker=marker, color=label.colour, markersize=5, linestyle="none")
        ax.annotate(
            label.text,
            (label.x_s, y),
            xytext=(5, 0),
            textcoords="offset points",
            fontsize=LABEL_FONT_PT,
            va="center",
            color=label.colour,
            annotation_clip=False,
            clip_on=True,
        )


def _steps_of(run: Run, event_type: str) -> list[Step]:
    return [step for step in run.steps if step.event.get("type") == event_type]
