"""End to end in the simulated room with the real models: the default scene, as `make demo` runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from device.cli import main
from device.sim.summary import words

pytestmark = pytest.mark.slow


def run_demo(out: Path, models_dir: Path, *extra: str) -> dict[str, Any]:
    env_models = ["--config", str(write_config(out.parent / f"{out.name}.toml", models_dir))]
    assert main(["demo", "--out", str(out), *env_models, *extra]) == 0
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return summary


def write_config(path: Path, models_dir: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[models]\ndir = "{models_dir}"\n')
    return path


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo") / "run1"
    return out, run_demo(out, models_dir)


def test_the_default_scene_is_a_whole_conversation_with_an_honoured_interruption(
    default_run: tuple[Path, dict[str, Any]],
) -> None:
    _, summary = default_run
    turns = summary["turns"]
    assert [t["said"] for t in turns] == ["Tell me a story.", "What time is it?"]
    for turn in turns:
        assert turn["wer"] <= 0.10, turn
    story, answer = turns
    assert story["interrupted"] is True
    heard, said = words(story["heard_text"]), words(story["reply_text"])
    assert 0 < len(heard) < len(said) and heard == said[: len(heard)]  # a strict prefix, in whole words
    assert answer["interrupted"] is False and answer["heard_text"] == answer["reply_text"] == "It's 9:41 AM."
    assert len(summary["barge_ins"]) == 1 and summary["false_barge_ins"] == 0
    assert summary["cutoff_max_samples_after_decision"] <= summary["period_samples"]
    assert summary["stale_samples_played"] == 0
    assert summary["leaks"] == 0 and summary["xruns"] == 0
    assert summary["states"][-1] == "Stopping"
    barge_in = summary["barge_ins"][0]
    # Paused at the first hint of the user's voice, then cancelled once it was confirmed: silence comes first.
    assert barge_in["truth_onset_s"] < barge_in["cut_s"] <= barge_in["decision_s"] < barge_in["truth_onset_s"] + 2.0
    assert summary["interruptions"]["pauses"] == 1 and summary["interruptions"]["false_resumes"] == 0
    assert summary["aec"]["converged_at_s"] is not None and summary["aec"]["erle_after_convergence_db"] > 10


def test_the_run_leaves_every_promised_file(default_run: tuple[Path, dict[str, Any]]) -> None:
    out, _ = default_run
    for name in ("events.jsonl", "mic.wav", "cleaned.wav", "speaker.wav", "summary.json", "timeline.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_same_scene_gives_a_byte_identical_event_log_and_replay_agrees(
    default_run: tuple[Path, dict[str, Any]], models_dir: Path
) -> None:
    out, _ = default_run
    again = out.parent / "run2"  # in another process: nothing may depend on what a process happened to draw
    config = write_config(out.parent / "run2.toml", models_dir)
    subprocess.run(
        [sys.executable, "-m", "device", "demo", "--out", str(again), "--config", str(config)],
        capture_output=True,
        check=True,
    )
    assert (again / "events.jsonl").read_bytes() == (out / "events.jsonl").read_bytes()
    replay = subprocess.run(
        [sys.executable, "-m", "device", "replay", "--quiet", str(out / "events.jsonl")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert replay.returncode == 0, replay.stderr
    assert "0 differing" in replay.stderr


def test_a_scene_with_an_unknown_voice_names_the_voices(tmp_path: Path, models_dir: Path) -> None:
    scene = tmp_path / "scene.toml"
    scene.write_text('[[say]]\ntext = "Hey Jarvis. Hello."\nvoice = "xx-nope"\nat_s = 1.0\n')
    out = tmp_path / "out"
    config = write_config(tmp_path / "c.toml", models_dir)
    result = subprocess.run(
        [sys.executable, "-m", "device", "demo", "--scene", str(scene), "--config", str(config), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "xx-nope" in result.stderr and "en-us" in result.stderr
