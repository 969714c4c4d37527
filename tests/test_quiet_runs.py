"""A run with nothing to measure (an empty scene, or speech hearing never found) still gives a picture and a
summary, and both say why the talk-over marks are missing (issue 11, case 3)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from device.core import events as ev
from device.runtime.eventlog import LoggedStep
from device.sim.card import Utterance
from device.sim.plot import render_timeline
from device.sim.summary import run_notes
from tests.test_plot import RATE_HZ, write_wav

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _quiet_run(out_dir: Path, notes: list[str]) -> Path:
    """A run directory as `spine demo` leaves it for a scene where the user never spoke: the start-up sound only."""
    total = 3 * RATE_HZ
    write_wav(out_dir / "mic.wav", np.random.default_rng(0).standard_normal(total) * 30)
    write_wav(out_dir / "speaker.wav", np.zeros(total))
    records = [
        {"spine_log": 1, "core_config": {"rate_hz": RATE_HZ}},
        {"t": 160, "event": {"type": "Started"}},
        {"t": 160, "state": "Idle", "commands": [{"type": "PlayEarcon", "epoch": 1, "kind": "startup"}]},
    ]
    (out_dir / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    summary = {"utterances": [], "turns": [], "barge_ins": [], "duration_s": 3.0, "clock": "virtual", "notes": notes}
    (out_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return out_dir


def test_a_run_without_any_speech_onset_still_draws_its_picture(tmp_path: Path) -> None:
    # Before: zip(onsets, [*onsets[1:], inf], strict=True) raised ValueError when there was no onset at all.
    path = render_timeline(_quiet_run(tmp_path, run_notes([], [])))

    assert path.read_bytes()[:8] == PNG_MAGIC


def test_the_note_is_drawn_on_the_picture(tmp_path: Path) -> None:
    import matplotlib.image

    with_note = matplotlib.image.imread(render_timeline(_quiet_run(tmp_path, ["nothing to measure here"])))
    without = matplotlib.image.imread(render_timeline(_quiet_run(tmp_path, [])))

    assert not np.array_equal(with_note, without)


def test_an_empty_script_is_noted() -> None:
    assert run_notes([], []) == [
        "the user never spoke (no [[say]] was due before the end): no turn, no talk-over to measure"
    ]


def test_speech_that_hearing_never_found_is_noted() -> None:
    said = [Utterance("hey jarvis", "en-us", 16000, 32000)]
    started = LoggedStep(3, 160, ev.Started(), "Idle", ())

    assert run_notes(said, [started]) == ["hearing found no user speech onset: no turn, no talk-over to measure"]


def test_an_ordinary_run_has_no_notes() -> None:
    said = [Utterance("hey jarvis", "en-us", 16000, 32000)]
    heard = LoggedStep(3, 17000, ev.SpeechStarted(16800), "Hearing", ())

    assert run_notes(said, [heard]) == []


def test_utterances_that_ran_into_each_other_are_noted() -> None:
    # An `at_s` due while an `after` utterance is still being said starts anyway: the voices are mixed.
    said = [Utterance("one", "en-us", 16000, 48000), Utterance("two", "en-us", 40000, 56000)]
    heard = LoggedStep(3, 17000, ev.SpeechStarted(16800), "Hearing", ())

    assert run_notes(said, [heard]) == [
        "utterances 1 and 2 overlapped: 2 began at 2.5 s, while 1 ran to 3.0 s (their voices are mixed at the mic)"
    ]
