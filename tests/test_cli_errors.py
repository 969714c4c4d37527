"""`spine` as a user runs it: a real process, its exit status, and what it prints.

Errors a user can fix are ONE line on stderr naming FILE:LINE where there is a file, with no traceback, and
exit status 2 (device/errors.py). `spine demo` reads its config and scene before it loads any model, so the
input errors below need no models; the models directory points at an empty folder all the same, so nothing
here can pick up models installed on the machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from device.core import chart


@pytest.fixture
def empty_models(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


def spine(*args: str | Path, models: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPINE_MODELS_DIR": str(models)}
    return subprocess.run(
        [sys.executable, "-m", "device", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=models.parent,
        timeout=120,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single error line, after checking the exit status and that nothing else was printed."""
    assert "Traceback" not in result.stderr
    assert (result.returncode, result.stdout, result.stderr.count("\n"), result.stderr[-1:]) == (2, "", 1, "\n")
    assert result.stderr.startswith("spine: error: ")
    return result.stderr.removeprefix("spine: error: ").rstrip("\n")


def test_config_with_an_unknown_key_names_file_line_and_key(tmp_path: Path, empty_models: Path) -> None:
    config = tmp_path / "spine.toml"
    config.write_text("[audio]\nperiod_ms = 10\nfade_mss = 4.0\n", encoding="utf-8")
    result = spine("demo", "--config", config, "--out", tmp_path / "out", models=empty_models)
    assert one_line_error(result) == (
        f"{config}:3: unknown key `fade_mss` in [audio]; allowed keys: "
        "period_ms, fade_ms, switch_interval_ms, card_rate_hz, input_device, output_device, reopen_first_s, "
        "reopen_max_s, realtime_priority"
    )  # fmt: skip


def test_config_with_a_toml_syntax_error_names_the_line(tmp_path: Path, empty_models: Path) -> None:
    config = tmp_path / "spine.toml"
    config.write_text('[wake]\nthreshold = 0.5\nmodel = "hey_jarvis\n', encoding="utf-8")
    result = spine("demo", "--config", config, "--out", tmp_path / "out", models=empty_models)
    assert one_line_error(result).startswith(f"{config}:3: TOML syntax error: ")


def test_config_with_a_value_out_of_range_names_the_table(tmp_path: Path, empty_models: Path) -> None:
    config = tmp_path / "spine.toml"
    config.write_text("# audio\n\n[audio]\nperiod_ms = 10\nfade_ms = 25.0\n", encoding="utf-8")
    result = spine("demo", "--config", config, "--out", tmp_path / "out", models=empty_models)
    assert one_line_error(result) == (
        f"{config}:3: `fade_ms` must be 0.5..period_ms (10), got 25.0 (in [audio])"
    )  # fmt: skip


def test_a_missing_config_file_is_a_one_line_error(tmp_path: Path, empty_models: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    result = spine("demo", "--config", missing, "--out", tmp_path / "out", models=empty_models)
    assert one_line_error(result) == f"file not found: {missing}"


def test_scene_with_both_at_s_and_after_names_file_and_line(tmp_path: Path, empty_models: Path) -> None:
    scene = tmp_path / "bad.toml"
    scene.write_text(
        '[room]\nseed = 1\n\n[[say]]\ntext = "Hey Jarvis."\nat_s = 1.0\nafter = "silent"\n', encoding="utf-8"
    )
    result = spine("demo", "--scene", scene, "--out", tmp_path / "out", models=empty_models)
    message = one_line_error(result)
    assert message.startswith(f"{scene}:4: give exactly one of `at_s`")
    assert message.endswith("(in [[say]] entry 1)")


def test_demo_without_models_says_how_to_fetch_them(tmp_path: Path, empty_models: Path) -> None:
    result = spine("demo", "--out", tmp_path / "out", models=empty_models)
    message = one_line_error(result)
    assert message.startswith(f"model file {empty_models}/")
    assert "spine models fetch" in message
    assert not (tmp_path / "out").exists()  # nothing was started, so nothing was written


def test_fsm_check_passes(empty_models: Path) -> None:
    result = spine("fsm", "--check", models=empty_models)
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "fsm: every (state, event) pair is classified and every state is reachable\n",
        "",
    )


def test_fsm_prints_the_mermaid_diagram(empty_models: Path) -> None:
    result = spine("fsm", models=empty_models)
    assert (result.returncode, result.stdout, result.stderr) == (0, chart.mermaid(), "")
    assert result.stdout.startswith("stateDiagram-v2\n    [*] --> Idle\n")


def test_help_lists_the_commands(empty_models: Path) -> None:
    result = spine("--help", models=empty_models)
    assert (result.returncode, result.stderr) == (0, "")
    for command in ("demo", "replay", "fsm", "models"):
        assert f"\n    {command} " in result.stdout
    assert "spine models fetch" in result.stdout


def test_demo_help_names_every_output_file(empty_models: Path) -> None:
    result = spine("demo", "--help", models=empty_models)
    assert (result.returncode, result.stderr) == (0, "")
    for output in ("events.jsonl", "mic.wav", "speaker.wav", "summary.json", "timeline.png", "--out"):
        assert output in result.stdout


def test_an_unknown_command_is_a_usage_error(empty_models: Path) -> None:
    result = spine("dance", models=empty_models)
    assert (result.returncode, result.stdout, "Traceback" in result.stderr) == (2, "", False)
    assert "invalid choice: 'dance'" in result.stderr
