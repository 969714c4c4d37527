"""The echo scene suite in virtual time, in full, AEC on, as `spine bench echo` runs it (without the no-AEC
comparison): the scenes cover what issue 9 asks, the run keeps the playback invariants, and the report is
sane. The issue's targets are in `test_issue_9_targets`, at the level hearing meets today (docs/echo-suite.md
has the numbers); tighten them there as hearing improves.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

import pytest

from device.bench.echo import describe, run_suite
from device.bench.echo_measures import TARGETS, targets
from device.bench.echo_report import report_markdown
from device.config import Config, ModelsConfig
from device.sim.scene import load_scene

pytestmark = pytest.mark.slow

SCENES = sorted((Path(__file__).resolve().parent.parent / "scenes" / "echo").glob("*.toml"))
ONSETS_S = (0.3, 0.7, 1.5, 3.0, 6.0)
STOPS = Config().barge_in.stop_phrases


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("echo-suite")
    return run_suite(Config(models=ModelsConfig(dir=models_dir)), SCENES, out, jobs=2, compare_no_aec=False)


def test_the_scenes_sweep_onsets_classes_kinds_voices_and_rooms() -> None:
    scenes = [load_scene(path) for path in SCENES]
    infos = [describe(scene, "hey jarvis", STOPS) for scene in scenes]
    cells = {(i.scene_class, i.onset_s, i.talk_kind) for i in infos if i.kind == "talk-over"}
    assert cells == {(c, o, k) for c in ("cold", "warm") for o in ONSETS_S for k in ("stop", "wake", "speech")}
    stop_texts = {i.talk_text for i in infos if i.talk_kind == "stop"}
    assert {"Stop.", "Cancel.", "Never mind.", "Hey Jarvis, stop."} <= stop_texts
    assert {(i.kind, i.scene_class) for i in infos if i.kind == "echo-only"} == {
        ("echo-only", "cold"),
        ("echo-only", "warm"),
    }
    assert len({say.voice for scene in scenes for say in scene.say}) >= 4
    levels = {round(scene.room.echo_gain_db - scene.say[0].gain_db) for scene in scenes}
    assert min(levels) == -12 and max(levels) == 6
    delays = {scene.room.echo_delay_ms for scene in scenes}
    assert min(delays) <= 20.0 and max(delays) >= 300.0
    rt60s = {scene.room.rt60_s for scene in scenes}
    assert min(rt60s) <= 0.2 and max(rt60s) >= 0.6
    if any(i.hard for i in infos):  # hard rooms on a share of both sets, each kind of hardness present
        assert {h for i in infos for h in i.hard} == {"drift", "jump", "clip", "stall"}
        assert any(i.hard for i in infos if i.kind == "echo-only")
        talk_overs = [i for i in infos if i.kind == "talk-over"]
        assert 0.1 <= sum(1 for i in talk_overs if i.hard) / len(talk_overs) <= 0.5


def test_every_run_keeps_the_playback_invariants(suite: dict[str, Any]) -> None:
    for run in suite["runs"]:
        summary = run["summary"]
        assert summary["stale_samples_played"] == 0, run["scene"]
        assert summary["leaks"] == 0, run["scene"]


def test_the_talk_overs_land_where_the_scenes_put_them(suite: dict[str, Any]) -> None:
    # A scripted talk-over lands on the story unless the assistant cut the story itself before it (counted as
    # self-interruptions) or the story request was misheard (a short answer ended before it): rare.
    clean = [
        r for r in suite["runs"] if r["kind"] == "talk-over" and not r["summary"]["interruptions"]["self_interruptions"]
    ]
    landed = [r for r in clean if any(t["text"] == r["talk_text"] for t in r["summary"]["interruptions"]["talk_overs"])]
    assert len(landed) >= 0.9 * len(clean)
    for run in suite["runs"]:
        for talk in run["summary"]["interruptions"]["talk_overs"]:
            if talk["text"] == run["talk_text"]:
                assert talk["into_answer_s"] == pytest.approx(run["onset_s"], abs=0.02), run["scene"]
                assert isinstance(talk["honoured"], bool) and isinstance(talk["answered"], bool)
                if talk["interrupted"]:
                    assert 0.0 <= talk["onset_to_silence_ms"] <= 1000 * (talk["duration_s"] + 1.1), run["scene"]


def test_the_measured_echo_level_follows_the_scripted_one(suite: dict[str, Any]) -> None:
    # The scenes script the echo relative to the user; the measure is of the mic's two tracks. They differ by the
    # voices' loudness (a few dB), never wholesale: a broken level measure would put latencies in wrong groups.
    gaps = [
        talk["echo_to_user_db"] - run["nominal_echo_to_user_db"]
        for run in suite["runs"]
        for talk in run["summary"]["interruptions"]["talk_overs"]
        if talk["text"] == run["talk_text"] and talk["echo_to_user_db"] is not None
    ]
    landed = sum(
        1
        for run in suite["runs"]
        for talk in run["summary"]["interruptions"]["talk_overs"]
        if talk["text"] == run["talk_text"]
    )
    assert landed > 0 and len(gaps) == landed  # the user is always active, and the echo is heard before the cut
    assert abs(statistics.median(gaps)) <= 4.0


def test_the_report_has_the_targets_every_cell_and_every_scene(suite: dict[str, Any]) -> None:
    on = suite["aggregates"]["aec"]
    assert set(on["by_class_and_onset"]) == {f"{c} {o}" for c in ("cold", "warm") for o in ONSETS_S}
    for stats in on["by_class_and_onset"].values():
        assert stats["talk_overs"] + stats["unlanded"] == 8
        assert stats["stops"] <= 4 and stats["missed"] <= stats["talk_overs"]
    assert on["talk_overs"] >= sum(v["talk_overs"] for v in on["by_class_and_onset"].values())
    text = report_markdown(suite, "spine bench echo")
    for heading in ("## Targets (issue 9)", "## By scene class and onset", "## Hearing itself", "## Per scene"):
        assert heading in text
    assert len(targets(on)) == len(TARGETS) and text.count("| met |") + text.count("| MISSED |") == len(TARGETS)
    scene_rows = [line for line in text.splitlines() if re.match(r"\| (cold|warm|only)_", line)]
    assert len(scene_rows) == len(SCENES)
    assert suite["cpu_s"] > 0 and all(run["cpu_s"] > 0 for run in suite["runs"])


def test_issue_9_targets(suite: dict[str, Any]) -> None:
    """The issue's numbers, as far as hearing meets them (docs/echo-suite.md, `spine bench echo` of 2026-12-02 on
    the played-reference hearing, with the delay found on the start-up sound). The table there marks each met or
    missed against the real target (`device.bench.echo_measures.TARGETS`); here each bound sits a little above that
    run's number, the issue's target in the comment. Tighten them as hearing improves; none may loosen."""
    on = suite["aggregates"]["aec"]
    assert on["self_replies"] == 0  # target 0 (measured 0)
    assert on["false_resumes"] <= 2  # (measured 1)
    assert on["echo_only_false_barge_ins"] == 0  # target 0 (measured 0; 25 before the played-reference hearing)
    assert on["self_interruptions"] <= 2  # target 0 (measured 0; 131 before)
    assert on["missed_pct_worst_cell"] <= 30.0  # target <= 2 % in every (class, onset) cell (measured 25 %)
    assert on["missed_pct"] <= 5.0  # target <= 2 % (measured 3.75 %; 5 % before the delay found on the start-up sound)
    assert on["stops_honoured_pct"] >= 90.0  # target >= 95 % (measured 92.5 %; 90 %, 80 % and 60 % before)
    assert on["stops_answered"] <= 1  # target 0 (measured 1; 2 and 10 before)
    loud_user = on["onset_to_silence_ms"]["user_at_least_as_loud"]
    loud_echo = on["onset_to_silence_ms"]["echo_louder_up_to_6_db"]
    assert loud_user["n"] >= 3 and loud_user["p95"] <= 300.0  # target p95 <= 150 ms (measured 264 ms; 230, 347 before)
    assert loud_echo["n"] >= 3 and loud_echo["p95"] <= 400.0  # target p95 <= 300 ms (measured 326; 329, 749 before)
