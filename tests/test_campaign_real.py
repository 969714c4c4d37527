"""The campaign's slice with the real models (device/bench/campaign_real.py): real hearing, whisper.cpp and Piper in
hard rooms, each conversation talked over at a random moment. CI runs a short slice; `spine bench reliability`
runs a hundred."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from device.bench import campaign_real
from device.config import Config, ModelsConfig

pytestmark = pytest.mark.slow


def test_the_plan_is_the_seeds_and_sweeps_the_moments_the_rooms_and_the_talk_overs() -> None:
    plan = campaign_real.real_plan(100, 16)
    assert plan == campaign_real.real_plan(100, 16)
    assert {c.moment for c in plan} == {"none", "request", "answer"}
    assert {c.talk_over for c in plan} == set(campaign_real.TALK_OVERS)
    rooms = [c.scene.room for c in plan]
    assert sum(bool(r.delay_jumps) for r in rooms) > 15 and sum(r.drift_ppm != 0 for r in rooms) > 30
    assert sum(bool(c.scene.stall) for c in plan) > 15
    echo_over_user = [r.echo_gain_db - c.scene.say[0].gain_db for r, c in zip(rooms, plan, strict=True)]
    assert min(echo_over_user) < -18 and max(echo_over_user) > 3  # from far under the user to louder than them


def test_a_short_slice_with_the_real_models_keeps_the_contract(tmp_path: Path, models_dir: Path) -> None:
    config = replace(Config(), models=ModelsConfig(dir=models_dir))
    outcomes, _ = campaign_real.run_real_slice(8, 16, config, tmp_path, 2, lambda _done, _total: None)
    result = campaign_real.tally_real(outcomes)
    assert result["broke_the_contract"] == 0, result["failures"]
    assert result["self_replies"] == 0 and result["conversations"] == 8
    assert list(tmp_path.glob("real-*.jsonl")) == []  # only a failing conversation's log is kept
    # What was talked over was acted on in most cases (hearing's own figures are the echo suite's).
    assert result["talk_overs_honoured"] >= result["talk_overs"] - 2
