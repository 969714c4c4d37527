"""The scene format: the default scene, its copy in scenes/, and the errors scene authors will meet."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.errors import UserError
from device.sim.scene import DelayJump, RoomSpec, Say, Scene, Stall, default_scene_text, load_scene

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


HARD_SCENE = """\
duration_s = 20.0

[room]
echo_delay_ms = 60.0
drift_ppm = -100
speaker_clip_dbfs = -6.0

[[room.delay_jumps]]
at_s = 3.0
ms = 10.0

[[room.delay_jumps]]
at_s = 9.5
ms = -20

[[say]]
text = "Hey Jarvis. Tell me a story."
at_s = 1.0

[[stall]]
at_s = 5.0
ms = 300.0

[[stall]]
at_s = 5.0
ms = 50
"""


def test_a_hard_room_scene_loads_every_new_key(tmp_path: Path) -> None:
    scene = load_scene(write(tmp_path, HARD_SCENE))
    assert scene.room == RoomSpec(
        echo_delay_ms=60.0,
        drift_ppm=-100.0,
        delay_jumps=(DelayJump(at_s=3.0, ms=10.0), DelayJump(at_s=9.5, ms=-20.0)),
        speaker_clip_dbfs=-6.0,
    )
    assert scene.stall == (Stall(at_s=5.0, ms=300.0), Stall(at_s=5.0, ms=50.0))


def test_the_new_keys_default_to_an_ideal_room_and_no_stall() -> None:
    scene = load_scene(None)
    assert (scene.room.drift_ppm, scene.room.delay_jumps, scene.room.speaker_clip_dbfs) == (0.0, (), None)
    assert scene.stall == ()


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("[room]\ndrift_ppm = 1001\n", 1, "`drift_ppm` must be between -1000 and 1000, got 1001.0"),
        ("[room]\ndrift_ppm = -1500\n", 1, "`drift_ppm` must be between -1000 and 1000, got -1500.0"),
        ("[room]\nspeaker_clip_dbfs = 3\n", 1, "`speaker_clip_dbfs` must be between -30 and 0 (dB full scale)"),
        ("[room]\nspeaker_clip_dbfs = -31\n", 1, "`speaker_clip_dbfs` must be between -30 and 0"),
        ("[[room.delay_jumps]]\nat_s = 1.0\nms = 0\n", 1, "`ms` must be non-zero and between -100 and 100"),
        ("[[room.delay_jumps]]\nat_s = 1.0\nms = 100.5\n", 1, "`ms` must be non-zero and between -100 and 100"),
        ("[[room.delay_jumps]]\nat_s = -1.0\nms = 5\n", 2, "`at_s` must be 0..86400, got -1.0"),
        ("[[room.delay_jumps]]\nat_s = 1.0\n", 1, "missing key `ms` in [[room.delay_jumps]] entry 1"),
        ("[[stall]]\nat_s = 1.0\nms = 0\n", 1, "`ms` must be more than 0 and at most 2000 (milliseconds), got 0.0"),
        ("[[stall]]\nat_s = 1.0\nms = 2001\n", 1, "`ms` must be more than 0 and at most 2000"),
        ("[[stall]]\nat_s = -0.5\nms = 10\n", 2, "`at_s` must be 0..86400, got -0.5"),
        ("[[stall]]\nms = 10\n", 1, "missing key `at_s` in [[stall]] entry 1"),
        ("[[stall]]\nat_s = inf\nms = 10\n", 2, "`at_s` must be 0..86400, got inf"),
        ("[[stall]]\nat_s = 1\nms = nan\n", 1, "`ms` must be more than 0 and at most 2000"),
        ("[[room.delay_jumps]]\nat_s = nan\nms = 5\n", 2, "`at_s` must be 0..86400, got nan"),
        ("[[room.delay_jumps]]\nat_s = 1.0\nms = nan\n", 1, "`ms` must be non-zero and between -100 and 100"),
        ("[room]\ndrift_ppm = nan\n", 1, "`drift_ppm` must be between -1000 and 1000, got nan"),
        ("[room]\nspeaker_clip_dbfs = nan\n", 1, "`speaker_clip_dbfs` must be between -30 and 0"),
        ("[[stall]]\nat_s = 1\nms = 10\nlength_ms = 5\n", 4, "unknown key `length_ms` in [[stall]] entry 1"),
    ],
)
def test_the_hard_room_keys_are_checked_with_errors_naming_them(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    error = error_of(tmp_path, text)
    assert message in error.message
    assert error.where == f"{tmp_path / 'scene.toml'}:{line}"


def test_an_error_in_the_second_jump_names_its_entry(tmp_path: Path) -> None:
    text = "[room]\n\n[[room.delay_jumps]]\nat_s = 1.0\nms = 5\n\n[[room.delay_jumps]]\nat_s = 2.0\nms = 200\n"
    error = error_of(tmp_path, text)
    assert "(in [[room.delay_jumps]] entry 2)" in error.message
    assert error.where == f"{tmp_path / 'scene.toml'}:7"


def test_delay_jumps_out_of_order_are_an_error(tmp_path: Path) -> None:
    text = "[room]\n[[room.delay_jumps]]\nat_s = 2.0\nms = 5\n[[room.delay_jumps]]\nat_s = 1.0\nms = 5\n"
    error = error_of(tmp_path, text)
    assert "`delay_jumps` entries must be in order of `at_s`: entry 2 at 1.0 s comes after 2.0 s" in error.message
    assert "(in [room])" in error.message


def test_jumps_that_take_the_delay_below_zero_are_an_error(tmp_path: Path) -> None:
    text = "[room]\necho_delay_ms = 30\n[[room.delay_jumps]]\nat_s = 1.0\nms = -20\n"
    text += "[[room.delay_jumps]]\nat_s = 2.0\nms = -20\n"
    error = error_of(tmp_path, text)
    assert "`delay_jumps` entry 2 takes the echo delay below 0 (30.0 ms and the jumps up to it sum to -10 ms)" in (
        error.message
    )


def test_stalls_out_of_order_are_an_error(tmp_path: Path) -> None:
    error = error_of(tmp_path, "[[stall]]\nat_s = 3.0\nms = 10\n[[stall]]\nat_s = 2.5\nms = 10\n")
    assert "`stall` entries must be in order of `at_s`: entry 2 at 2.5 s comes after 3.0 s" in error.message
    assert "(in the top level)" in error.message
