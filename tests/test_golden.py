"""Golden event logs: the hard cases decide exactly as reviewed, and replay reproduces them."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.core import commands as cmd
from device.replay import replay
from device.runtime.eventlog import read_log
from tests.golden_scenes import CASES, GOLDEN_DIR, write_case


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_log_is_unchanged(name: str, tmp_path: Path) -> None:
    fresh = tmp_path / f"{name}.jsonl"
    write_case(name, fresh)
    golden = GOLDEN_DIR / f"{name}.jsonl"
    assert fresh.read_bytes() == golden.read_bytes(), (
        f"decisions changed for {name}: review `diff {golden} {fresh}`, then `python -m tests.golden_scenes`"
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_log_replays(name: str) -> None:
    steps, mismatches = replay(GOLDEN_DIR / f"{name}.jsonl")
    assert mismatches == [] and len(steps) == len(CASES[name]())


def test_barge_in_golden_commits_exactly_the_heard_words_and_drops_late_results() -> None:
    steps = read_log(GOLDEN_DIR / "barge_in_mid_sentence.jsonl").steps
    commits = [c for s in steps for c in s.commands if isinstance(c, cmd.CommitHeard)]
    assert commits[0].heard_text == "Once upon a time there"  # 5,740 samples: five whole words of 1,000
    assert commits[0].interrupted
    ignored = [c.reason for s in steps for c in s.commands if isinstance(c, cmd.NoteIgnored)]
    assert "ReplyFinished of turn 1 dropped: current turn is 2 in Listening" in ignored
    assert any(r.startswith("TtsChunkReady of turn 1 dropped") for r in ignored)
    assert [s.state for s in steps][-1] == "Idle"
