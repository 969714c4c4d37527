"""Scenes that would run away or mix the user's voices are refused at their line (issue 11, cases 1 and 2).

Before: `duration_s = 1e12` ran on past `[sim] max_duration_s` while memory grew, inf or nan in `duration_s`
or `at_s` ended in a traceback, and `[[say]]` entries out of order or overlapping were mixed at the mic.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from device.config import Config
from device.errors import UserError
from device.rates import SPINE_RATE_HZ as RATE_HZ
from device.settings.sim import SimConfig
from device.sim.demo import Rig
from device.sim.scene import Scene, load_scene, refuse_overlapping_says

STORY = "Hey Jarvis. Tell me a story."


def scene_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scene.toml"
    path.write_text(text, encoding="utf-8")
    return path


def refusal(path: Path) -> UserError:
    with pytest.raises(UserError) as raised:
        refuse_overlapping_says(load_scene(path), path, RATE_HZ)
    return raised.value


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("# a day and more\nduration_s = 1e12\n", 2, "`duration_s` must be 0..86400, got 1000000000000.0"),
        ("duration_s = inf\n", 1, "`duration_s` must be 0..86400, got inf"),
        ("duration_s = nan\n", 1, "`duration_s` must be 0..86400, got nan"),
        (f'[[say]]\ntext = "{STORY}"\nat_s = inf\n', 3, "`at_s` must be 0..86400, got inf"),
        (f'[[say]]\ntext = "{STORY}"\nat_s = nan\n', 3, "`at_s` must be 0..86400, got nan"),
        (f'[[say]]\ntext = "{STORY}"\nafter = "speaking"\ndelay_s = inf\n', 4, "`delay_s` must be 0..86400, got inf"),
        ("[room]\necho_gain_db = nan\n", 1, "`echo_gain_db` must be at most 20 (dB), got nan"),
        ("[room]\nnoise_dbfs = nan\n", 1, "`noise_dbfs` must be at most 0 (full scale), got nan"),
    ],
)
def test_times_beyond_a_day_inf_and_nan_are_refused_at_their_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = scene_file(tmp_path, text)

    with pytest.raises(UserError) as raised:
        load_scene(path)

    assert raised.value.where == f"{path}:{line}"
    assert raised.value.message.startswith(message)


def test_a_run_stops_at_max_duration_s_even_if_the_scene_asks_for_more() -> None:
    rig = Rig.__new__(Rig)  # only `finished` is exercised: it needs the config, nothing the run builds
    rig.config = Config(sim=SimConfig(max_duration_s=5.0))
    long_scene = Scene(duration_s=3600.0)

    assert not rig.finished(5 * RATE_HZ - 1, long_scene)
    assert rig.finished(5 * RATE_HZ, long_scene)


def test_spine_demo_refuses_a_scene_longer_than_max_duration_s_at_its_line(tmp_path: Path) -> None:
    path = scene_file(tmp_path, "# longer than the default max_duration_s of 600 s\nduration_s = 700\n")
    env = {**os.environ, "SPINE_MODELS_DIR": str(tmp_path / "no-models")}

    result = subprocess.run(
        [sys.executable, "-m", "device", "demo", "--scene", str(path), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr == (
        f"spine: error: {path}:2: `duration_s` = 700 s is longer than [sim] max_duration_s = 600 s: "
        "shorten the scene, or raise max_duration_s in the --config file\n"
    )
    assert not (tmp_path / "out").exists()


def test_at_s_going_backwards_is_refused_naming_both_utterances(tmp_path: Path) -> None:
    path = scene_file(
        tmp_path,
        f'[[say]]\ntext = "{STORY}"\nat_s = 5.0\n\n[[say]]\ntext = "What time is it?"\nafter = "silent"\n\n'
        '[[say]]\ntext = "Stop."\nat_s = 2.0\n',
    )

    with pytest.raises(UserError) as raised:
        load_scene(path)

    assert raised.value.where == f"{path}:11"  # the later entry's `at_s`
    assert raised.value.message == (
        f'`say[3].at_s` = 2 s comes before `say[1].at_s` = 5 s ("Stop." after "{STORY}"): the user says the '
        "[[say]] entries one after another; put them in order of `at_s`"
    )


def test_equal_times_and_after_entries_in_between_are_in_order(tmp_path: Path) -> None:
    path = scene_file(
        tmp_path,
        f'[[say]]\ntext = "{STORY}"\nat_s = 1.0\n\n[[say]]\ntext = "Stop."\nafter = "speaking"\n\n'
        '[[say]]\ntext = "Hey Jarvis."\nat_s = 30.0\n',
    )

    assert [say.at_s for say in load_scene(path).say] == [1.0, None, 30.0]


def test_an_utterance_due_while_the_previous_is_still_said_is_refused(tmp_path: Path) -> None:
    path = scene_file(tmp_path, f'[[say]]\ntext = "{STORY}"\nat_s = 1.0\n\n[[say]]\ntext = "Stop."\nat_s = 2.0\n')

    error = refusal(path)

    assert error.where == f"{path}:7"
    assert error.message.startswith(f'`say[2].at_s` = 2 s starts while `say[1]` is still being said ("{STORY}" runs')
    assert 'start "Stop." at ' in error.message


def test_the_time_the_refusal_suggests_is_accepted(tmp_path: Path) -> None:
    path = scene_file(tmp_path, f'[[say]]\ntext = "{STORY}"\nat_s = 1.0\n\n[[say]]\ntext = "Stop."\nat_s = 2.0\n')
    suggested = refusal(path).message.split('start "Stop." at ')[1].split(" s")[0]
    fixed = scene_file(
        tmp_path, f'[[say]]\ntext = "{STORY}"\nat_s = 1.0\n\n[[say]]\ntext = "Stop."\nat_s = {suggested}\n'
    )

    refuse_overlapping_says(load_scene(fixed), fixed, RATE_HZ)  # no error


def test_every_shipped_scene_passes_the_checks() -> None:
    root = Path(__file__).resolve().parent.parent / "scenes"
    for path in [None, *sorted(root.rglob("*.toml"))]:
        refuse_overlapping_says(load_scene(path), path, RATE_HZ)
