"""A long run's event log in parts, and the bound on the disk Spine's logs take (`[log]`)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from device.config import load_config
from device.core import events as ev
from device.core.machine import step
from device.core.states import initial
from device.errors import UserError
from device.replay import replay
from device.runtime.card import open_event_log
from device.runtime.eventlog import EventLog, read_log
from device.runtime.logparts import part_path
from tests.core_script import DEFAULTS

CONFIG = replace(DEFAULTS, earcons=False)


def conversations(count: int) -> list[tuple[int, ev.Event]]:
    """`count` wake-word requests answered by a timeout: real steps of the real core, a few hundred bytes each."""
    script: list[tuple[int, ev.Event]] = []
    for n in range(count):
        t = 400_000 * n
        script += [
            (t + 16000, ev.WakeDetected("hey_jarvis", 0.8, t + 16000)),
            (t + 20000, ev.SpeechStarted(t + 18000)),
            (t + 40000, ev.SpeechEnded(t + 38000)),
        ]
    return script


def record(log: EventLog, script: list[tuple[int, ev.Event]]) -> None:
    spine = initial(CONFIG)
    for t, event in script:
        log.event(t, event)
        spine, commands = step(spine, event, t)
        log.outcome(t, type(spine.state).__name__, commands)
    log.close()


def test_a_long_log_goes_on_in_parts_that_read_and_replay_as_one(tmp_path: Path) -> None:
    script = conversations(40)
    whole, parted = tmp_path / "whole" / "run.jsonl", tmp_path / "parted" / "run.jsonl"
    whole.parent.mkdir()
    parted.parent.mkdir()
    record(EventLog(whole, CONFIG), script)
    said: list[str] = []
    record(EventLog(parted, CONFIG, said.append, part_bytes=4000), script)
    parts = sorted(parted.parent.iterdir())
    assert len(parts) >= 4 and part_path(parted, len(parts)).exists()
    assert all(p.stat().st_size < 4000 + 1500 for p in parts)  # cut at the first step boundary past the size
    one, many = read_log(whole), read_log(parted)
    assert [(s.t, s.event, s.state, s.commands) for s in many.steps] == [
        (s.t, s.event, s.state, s.commands) for s in one.steps
    ]
    assert many.broken_links == () and len(many.steps) == len(script)
    assert replay(parted)[1] == []  # the real core over all the parts decides what the run decided
    assert said == []


def test_a_later_part_alone_names_its_first_and_a_missing_or_foreign_part_is_refused(tmp_path: Path) -> None:
    first = tmp_path / "run.jsonl"
    record(EventLog(first, CONFIG, part_bytes=4000), conversations(30))
    with pytest.raises(UserError, match=r"replay its first part, run\.jsonl"):
        read_log(part_path(first, 2))
    third = part_path(first, 3).read_bytes()
    part_path(first, 3).write_bytes(part_path(first, 2).read_bytes().replace(b'"part":2', b'"part":3'))
    with pytest.raises(UserError, match="part 3 does not continue part 2"):
        read_log(first)
    part_path(first, 3).write_bytes(third)
    part_path(first, 2).unlink()
    with pytest.raises(UserError, match="part 2 of this run's log is missing"):
        read_log(first)
    first.unlink()
    with pytest.raises(UserError, match=r"first part, run\.jsonl, was removed"):
        read_log(part_path(first, 3))


def test_the_oldest_spine_logs_go_first_and_nothing_else_is_touched(tmp_path: Path) -> None:
    old_runs = []
    for n in range(3):
        path = tmp_path / f"events-{n}.jsonl"
        record(EventLog(path, CONFIG), conversations(10))
        os.utime(path, (1_000_000 + n, 1_000_000 + n))
        old_runs.append(path)
    notes = tmp_path / "notes.jsonl"
    notes.write_bytes(b'{"mine": true}\n' * 2000)  # not a Spine log: never counted or removed
    sizes = [p.stat().st_size for p in old_runs]
    said: list[str] = []
    current = tmp_path / "events-now.jsonl"
    header = tmp_path / "elsewhere" / "header.jsonl"
    header.parent.mkdir()
    EventLog(header, CONFIG).close()
    log = EventLog(current, CONFIG, said.append, keep_bytes=sizes[1] + sizes[2] + header.stat().st_size)
    assert [p.exists() for p in old_runs] == [False, True, True] and notes.exists() and current.exists()
    assert len(said) == 1 and "removed 1 old event log file(s)" in said[0] and "events-0.jsonl" in said[0]
    record(log, conversations(10))
    assert current.exists()  # the part being written is never removed, whatever the bound


def test_spine_run_opens_its_log_with_the_configured_bounds(tmp_path: Path) -> None:
    toml = tmp_path / "spine.toml"
    toml.write_text("[log]\npart_mb = 1\nkeep_mb = 16\n", encoding="utf-8")
    log = open_event_log(tmp_path / "run.jsonl", load_config(toml))
    record(log, conversations(2500))
    parts = sorted(tmp_path.glob("run*.jsonl"))
    assert len(parts) >= 2 and all(p.stat().st_size < 1_100_000 for p in parts)
    assert len(read_log(tmp_path / "run.jsonl").steps) == 3 * 2500


@pytest.mark.parametrize(("text", "key"), [("part_mb = 0", "part_mb"), ("keep_mb = 1", "keep_mb")])
def test_log_bounds_out_of_range_are_refused_with_the_key(tmp_path: Path, text: str, key: str) -> None:
    toml = tmp_path / "spine.toml"
    toml.write_text(f"[log]\n{text}\n", encoding="utf-8")
    with pytest.raises(UserError, match=key):
        load_config(toml)


def test_a_next_part_that_cannot_be_created_is_said_once_and_the_log_goes_on_whole(tmp_path: Path) -> None:
    first = tmp_path / "run.jsonl"
    part_path(first, 2).mkdir()  # in the way of the next part (a full or broken directory refuses it the same)
    said: list[str] = []
    record(EventLog(first, CONFIG, said.append, part_bytes=4000), conversations(20))
    assert len(said) == 1 and "cannot start the event log's next part" in said[0]
    assert len(read_log(first).steps) == 3 * 20  # every step is in the first part


def test_a_new_log_under_an_old_logs_name_takes_none_of_its_later_parts(tmp_path: Path) -> None:
    first = tmp_path / "run.jsonl"
    record(EventLog(first, CONFIG, part_bytes=4000), conversations(20))  # a long earlier run under the same name
    assert part_path(first, 2).exists()
    record(EventLog(first, CONFIG, part_bytes=4000), conversations(1))  # a short one (`--log` given again)
    assert not part_path(first, 2).exists()
    assert len(read_log(first).steps) == 3 and replay(first)[1] == []
