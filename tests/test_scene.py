"""The scene format: the default scene, its copy in scenes/, and the errors scene authors will meet."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.errors import UserError
from device.sim.scene import RoomSpec, Say, Scene, default_scene_text, load_scene

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scene.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> UserError:
    with pytest.raises(UserError) as caught:
        load_scene(write(tmp_path, text))
    return caught.value


def test_default_scene_loads() -> None:
    assert load_scene(None) == Scene(
        room=RoomSpec(echo_delay_ms=40.0, echo_gain_db=-30.0, rt60_s=0.3, noise_dbfs=-60.0, seed=0),
        say=(
            Say(text="Hey Jarvis. Tell me a story.", at_s=1.0),
            Say(text="Hey Jarvis. What time is it?", after="speaking", delay_s=6.0),
        ),
        duration_s=None,
    )


def test_scenes_default_is_a_byte_identical_copy_of_the_packaged_default() -> None:
    packaged = (REPO / "device" / "data" / "default_scene.toml").read_bytes()
    assert (REPO / "scenes" / "default.toml").read_bytes() == packaged
    assert default_scene_text().encode("utf-8") == packaged


def test_scenes_default_loads_from_its_path() -> None:
    assert load_scene(REPO / "scenes" / "default.toml") == load_scene(None)


def test_empty_file_is_an_empty_scene_in_the_default_room(tmp_path: Path) -> None:
    assert load_scene(write(tmp_path, "")) == Scene(room=RoomSpec(), say=(), duration_s=None)


def test_both_at_s_and_after_is_an_error_at_the_say_line(tmp_path: Path) -> None:
    text = '[[say]]\ntext = "hi"\nat_s = 1.0\n\n[[say]]\ntext = "again"\nat_s = 2.0\nafter = "silent"\n'
    error = error_of(tmp_path, text)
    assert error.where == f"{tmp_path / 'scene.toml'}:5"
    assert "exactly one of `at_s`" in error.message
    assert "[[say]] entry 2" in error.message


def test_neither_at_s_nor_after_is_an_error(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[room]\nseed = 3\n\n[[say]]\ntext = "hi"\n')
    assert error.where == f"{tmp_path / 'scene.toml'}:4"
    assert "exactly one of `at_s`" in error.message


def test_unknown_after_lists_the_allowed_values(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[[say]]\ntext = "hi"\nafter = "later"\n')
    assert error.message == '`say[1].after` must be one of "speaking", "silent"; got "later"'
    assert error.where == f"{tmp_path / 'scene.toml'}:3"


def test_delay_s_with_at_s_is_an_error(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[[say]]\ntext = "hi"\nat_s = 1.0\ndelay_s = 2.0\n')
    assert "`delay_s` only applies with `after`" in error.message


def test_room_ranges_are_checked(tmp_path: Path) -> None:
    error = error_of(tmp_path, "\n[room]\nrt60_s = 0\n")
    assert error.message.startswith("`rt60_s` must be between")
    assert error.where == f"{tmp_path / 'scene.toml'}:2"


def test_typo_in_room_key_lists_the_room_keys(tmp_path: Path) -> None:
    error = error_of(tmp_path, "[room]\necho_gain = -20\n")
    assert "unknown key `echo_gain` in [room]" in error.message
    assert "echo_delay_ms, echo_gain_db, rt60_s, noise_dbfs, seed" in error.message
    assert error.where == f"{tmp_path / 'scene.toml'}:2"
