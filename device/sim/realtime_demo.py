"""`spine demo --clock wall --realtime-peer`: the simulated room with `[reply] backend = "realtime"`, answered by
the test peer (device/testing/realtime_peer.py) on loopback, so the whole path can be seen without a server.

The peer cannot understand speech: its first answer of a call is the local responder's story (long enough to be
interrupted), every later one says how much microphone audio it was given. The summary gains `realtime`: the
peer's items (what each answer said, where it was truncated, the words the truncated audio keeps), the
truncations it received with their `audio_end_ms`, and the connect time.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from device.config import Config
from device.reply.local import STORY
from device.sim.scene import Scene
from device.testing.realtime_peer import RealtimePeer
from device.testing.realtime_peer_records import PeerConfig, PeerTurn

DEMO_KEY = "sk-spine-demo-not-a-real-key"


def peer_reply(turn: PeerTurn) -> str:
    """The story first, then a line about the audio it was sent."""
    if len(turn.user_items) <= 1:
        return STORY
    audio = turn.user_items[-1].audio
    seconds = 0.0 if audio is None else len(audio) / 48_000
    return f"I got {seconds:.1f} seconds of your voice. I am only a test peer, so that is all I can say."


def demo_with_peer(
    config: Config,
    scene: Scene,
    scene_name: str,
    out_dir: Path,
    monitor_hold_s: float | None,
    peer: RealtimePeer | None = None,
) -> dict[str, Any]:
    """The demo against `peer` (tests pass one with faults; it must check `DEMO_KEY`), or a fresh one."""
    from device.sim.demo import demo

    own_peer = peer is None
    peer = peer or RealtimePeer(PeerConfig(api_key=DEMO_KEY, reply=peer_reply))
    base_url = peer.start()
    key_file = out_dir.parent / f".{out_dir.name}-peer-key"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(DEMO_KEY + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    reply = replace(
        config.reply, backend="realtime", base_url=base_url, model="spine-test-peer", api_key_env=None,
        api_key_file=key_file,
    )  # fmt: skip
    try:
        summary = demo(replace(config, reply=reply), scene, scene_name, out_dir, "wall", monitor_hold_s)
    finally:
        if own_peer:
            peer.stop()
        key_file.unlink(missing_ok=True)
    summary["realtime"] = peer_summary(peer)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def peer_summary(peer: RealtimePeer) -> dict[str, Any]:
    calls = peer.calls
    items = [
        {
            "id": item.id,
            "status": item.status,
            "generated_ms": round(item.generated_ms, 1),
            "truncated_at_ms": item.truncated_at_ms,
            "kept_words": " ".join(item.kept_words),
            "peer_first_frame_ms": None
            if item.first_frame_at_s is None
            else round((item.first_frame_at_s - item.requested_at_s) * 1000, 1),
        }
        for call in calls
        for item in call.assistant_items
    ]
    received = [event.type for call in calls for event in call.received]
    return {
        "calls": len(calls),
        "items": items,
        "cancels": received.count("response.cancel"),
        "clears": received.count("output_audio_buffer.clear"),
        "truncates": [
            {"item_id": getattr(event, "item_id", None), "audio_end_ms": getattr(event, "audio_end_ms", None)}
            for call in calls
            for event in call.received
            if event.type == "conversation.item.truncate"
        ],
    }
