"""`[reply] backend = "realtime"` through the whole daemon: the simulated room on the wall clock, the real models,
the real job runner and gated playback, and the test peer over real WebRTC on loopback (device/sim/realtime_demo.py).

The default scene: "Hey Jarvis. Tell me a story." is answered by the peer's story, the user interrupts it with
"Hey Jarvis. What time is it?" six seconds in, and the peer answers that. Slow (each run ~30 s of wall clock):
the waits are the scene's own, and every bound is generous for a loaded machine.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from device.config import Config
from device.rates import SPINE_RATE_HZ
from device.sim.realtime_demo import DEMO_KEY, demo_with_peer, peer_reply
from device.sim.scene import load_scene
from device.testing.realtime_peer import RealtimePeer
from device.testing.realtime_peer_records import PeerConfig

pytestmark = pytest.mark.slow

PERIOD_MS = 10.0


def run(tmp: Path, models_dir: Path, peer: RealtimePeer | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    config = replace(Config(), models=replace(Config().models, dir=models_dir))
    summary = demo_with_peer(config, load_scene(None), "default", tmp / "out", None, peer)
    records = [json.loads(line) for line in (tmp / "out" / "events.jsonl").read_text().splitlines()]
    return summary, records


def events_of(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r["event"] for r in records if r.get("event", {}).get("type") == kind]


def test_a_turn_and_a_barge_in_through_the_peer(
    tmp_path: Path, models_dir: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    summary, records = run(tmp_path, models_dir)
    turns, realtime = summary["turns"], summary["realtime"]
    assert [t["transcript"] for t in turns] == ["Tell me a story.", "What time is it?"]
    story, second = turns
    assert story["interrupted"] and story["heard_text"]
    # The peer got the interruption on the wire: cancel, clear, and a truncation at the played cursor.
    assert realtime["cancels"] >= 1 and realtime["clears"] >= 1
    (truncate,) = realtime["truncates"]
    (stopped,) = [e for e in events_of(records, "PlaybackStopped") if e["played_samples"] > 0]
    played_ms = stopped["played_samples"] * 1000 / SPINE_RATE_HZ
    assert abs(truncate["audio_end_ms"] - played_ms) <= PERIOD_MS + 1, (truncate, played_ms)
    # What the device says was heard is what the server's truncated item keeps.
    cut_item = next(item for item in realtime["items"] if item["truncated_at_ms"] is not None)
    assert cut_item["kept_words"] == story["heard_text"]
    # The second turn went through the same call, heard to its end.
    assert realtime["calls"] == 1
    assert not second["interrupted"] and second["heard_text"].startswith("I got")
    assert realtime["items"][-1]["status"] == "completed"
    link = events_of(records, "RemoteLinkChanged")
    assert [(e["up"], e["cause"]) for e in link] == [(True, "connected")]
    assert summary["stale_samples_played"] == 0 and summary["leaks"] == 0
    # The key is in no log line, no event and no output.
    out, err = capfd.readouterr()
    everything = "\n".join([out, err, caplog.text, (tmp_path / "out" / "events.jsonl").read_text()])
    assert DEMO_KEY not in everything


def test_a_peer_that_drops_mid_answer_gets_an_apology_then_a_new_call_answers_the_next_turn(
    tmp_path: Path, models_dir: Path
) -> None:
    healed = threading.Event()
    peer = RealtimePeer(
        PeerConfig(
            api_key=DEMO_KEY,
            reply=lambda turn: "Here I am again." if healed.is_set() else peer_reply(turn),
            fault="drop_mid_answer",
            fault_after_ms=1500.0,
        )
    )

    def heal_after_the_first_drop() -> None:  # the next call answers normally
        if peer.wait(lambda: bool(peer.calls) and peer.calls[0].ended is not None, timeout_s=60.0):
            peer.config = replace(peer.config, fault="none")
            healed.set()

    threading.Thread(target=heal_after_the_first_drop, daemon=True).start()
    try:
        summary, records = run(tmp_path, models_dir, peer)
    finally:
        peer.stop()
    assert healed.is_set()
    failed = events_of(records, "EngineFailed")
    assert len(failed) == 1 and "dropped" in failed[0]["reason"]
    # A defined state: the apology was spoken (an announcement), then the spine rested.
    states = [r.get("state") for r in records if "state" in r]
    assert "Announcing" in states
    link = [(e["up"], e["cause"]) for e in events_of(records, "RemoteLinkChanged")]
    assert link[:3] == [(True, "connected"), (False, "dropped"), (True, "connected")], link
    # The next turn was answered by the new call, heard to its end.
    assert summary["realtime"]["calls"] == 2
    last = summary["turns"][-1]
    assert last["transcript"] == "What time is it?" and last["heard_text"] == "Here I am again."
    assert not last["interrupted"]
