"""Bad input around `spine demo` and `spine fake-llm` has a defined outcome: one line naming the key or path and
the fix, exit status 2, no traceback (issue 11, cases 4, 5, 9 and 10; invariant 10)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from device.config import Config, core_config, load_config
from device.errors import UserError
from device.runtime.eventlog import EventLog
from device.sim.demo import make_out_dir
from device.testing.serve_cli import port_number


def spine(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPINE_MODELS_DIR": str(cwd / "no-models")}  # nothing here may need a model
    return subprocess.run(
        [sys.executable, "-m", "device", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_a_start_time_that_is_not_iso_8601_is_refused_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "spine.toml"
    path.write_text('[sim]\nidle_tail_s = 1.0\nstart_time = "yesterday"\n', encoding="utf-8")

    with pytest.raises(UserError) as raised:
        load_config(path)

    assert raised.value.where == f"{path}:3"
    assert "ISO 8601" in raised.value.message and '"2026-11-25T09:41:00"' in raised.value.message


@pytest.mark.parametrize("start_time", ["2026-11-25T09:41:00", "2026-11-25", "2026-11-25T09:41:00+01:00"])
def test_iso_8601_start_times_are_accepted(tmp_path: Path, start_time: str) -> None:
    path = tmp_path / "spine.toml"
    path.write_text(f'[sim]\nstart_time = "{start_time}"\n', encoding="utf-8")

    assert load_config(path).sim.start_time == start_time


def test_demo_out_an_existing_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a directory\n", encoding="utf-8")

    result = spine("demo", "--out", "taken", cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr == (
        "spine: error: taken: is a file, not a directory; give --out a directory (it is created if missing)\n"
    )


def test_an_out_dir_below_a_file_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("", encoding="utf-8")

    with pytest.raises(UserError, match="cannot create the output directory") as raised:
        make_out_dir(tmp_path / "taken" / "run")

    assert raised.value.where == str(tmp_path / "taken" / "run")


def test_an_event_log_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    # `spine demo --out DIR` where DIR/events.jsonl is a directory, or `spine run --log DIR`.
    with pytest.raises(UserError, match="cannot write the event log: Is a directory") as raised:
        EventLog(tmp_path, core_config(Config()))

    assert raised.value.where == str(tmp_path)


@pytest.mark.parametrize(("text", "port"), [("0", 0), ("8080", 8080), ("65535", 65535)])
def test_ports_in_range_are_taken(text: str, port: int) -> None:
    assert port_number(text) == port


@pytest.mark.parametrize("text", ["99999", "-1", "65536", "http"])
def test_ports_out_of_range_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"0\.\.65535"):
        port_number(text)


def test_fake_llm_port_99999_is_an_argparse_error(tmp_path: Path) -> None:
    result = spine("fake-llm", "--port", "99999", cwd=tmp_path)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "spine fake-llm: error: argument --port: port 99999 is out of range: give 0..65535 (0 picks a free one)"
    )
