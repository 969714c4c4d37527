"""The simulated soak (device/bench/soak.py), in full as `spine bench reliability` runs it: an hour of virtual time
in one run, conversations back to back, each interrupted at random, engines failing now and then.

What only a long run shows: the soak found that conversation memory grew without bound (90 messages after an hour,
every reply asked with all of them, the event log carrying each history again); memory now keeps the last
`[reply] memory_turns` exchanges.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from device.bench import soak
from device.config import Config, ModelsConfig
from device.engines.load import load_engines

pytestmark = pytest.mark.slow


def test_an_hour_of_interrupted_conversation_in_one_run_keeps_everything_bounded(
    models_dir: Path, tmp_path: Path
) -> None:
    config = Config(models=ModelsConfig(dir=models_dir))
    result = soak.run_soak(60.0, 16, config, load_engines(config, deterministic=True), tmp_path / "soak.jsonl")
    assert result.problems == ()
    assert result.conversations == 45 and result.virtual_s >= 44 * soak.SLOT_S
    assert result.interrupted > 10 and result.engine_failures > 5  # the run went through cuts and failures
    limit = 2 * config.reply.memory_turns
    assert result.memory_messages_max <= limit and result.history_messages_max <= limit
    start_mb, end_mb = result.rss_mb
    assert end_mb - start_mb <= soak.RSS_GROWTH_MAX_MB
    assert result.log_bytes < 2_000_000  # an hour of conversation; before the bound, histories grew it quadratically
