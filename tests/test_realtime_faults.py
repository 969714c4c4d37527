"""Faults of the realtime backend, and its pieces that decide without the network.

Unit (no network, no sleep; the clock is a number): the link's connect schedule (the back-off doubling, a wrong
key waiting the longest at once and said once, a turn bringing an attempt forward once), the link's reports
for a run of failed attempts, and `WordClock` (where the transcript's words end in the audio).

Through the whole daemon (slow: the simulated room on the wall clock, the real models, the test peer over real
WebRTC on loopback), each fault ends its turn in a defined state and the link comes back:
nobody listening at start (the apology, then the peer starts and the next turn is the model's); HTTP 500 with
`realtime_fallback = "local"` (the local responder answers with Piper); a wrong key (401: said once, the key in
no output); ICE never connecting (`media`); a data channel stalling mid-answer (the turn ends within
`stall_timeout_s`, the next turn is answered); and a typed request answered by the model from a text item.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from device.config import Config
from device.core.events import TextTyped
from device.engines.load import load_engines
from device.rates import SPINE_RATE_HZ
from device.reply.realtime_config import ConnectTimes, RealtimeConfig, RealtimeConnectError
from device.reply.realtime_link import ConnectSchedule, RealtimeLink
from device.reply.realtime_words import WordClock, learned_scale, modelled_ms, word_ms
from device.sim.demo import Rig, demo, run_wall
from device.sim.realtime_demo import peer_summary
from device.sim.scene import Scene, load_scene
from device.testing.realtime_peer import RealtimePeer
from device.testing.realtime_peer_records import PeerConfig, PeerTurn

KEY = "sk-spine-faults-NOT-A-KEY-0420"

# ---------------------------------------------------------------------------------------------- the schedule


def test_the_back_off_doubles_from_the_first_wait_to_the_longest() -> None:
    schedule = ConnectSchedule(first_s=0.5, max_s=30.0)
    now_s, waits = 100.0, []
    for _ in range(9):
        assert schedule.due(now_s)
        wait_s, _news = schedule.failed(now_s, "unreachable")
        assert not schedule.due(now_s + wait_s - 0.001) and schedule.due(now_s + wait_s)
        waits.append(wait_s)
        now_s += wait_s
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    schedule.connected()
    schedule.dropped(now_s, "dropped")  # a call that was up ended: the first wait again
    assert schedule.next_attempt_s == now_s + 0.5
    assert schedule.failed(now_s + 0.5, "unreachable")[0] == 1.0  # the drop counted as the first failure


def test_the_same_failure_is_news_once_and_a_refused_key_waits_the_longest_at_once() -> None:
    schedule = ConnectSchedule(first_s=0.5, max_s=30.0)
    assert schedule.failed(0.0, "auth") == (30.0, True)
    assert schedule.failed(30.0, "auth") == (30.0, False)
    assert schedule.failed(60.0, "auth") == (30.0, False)
    assert schedule.failed(90.0, "server") == (4.0, True)  # another failure is news; the doubling goes on
    assert schedule.failed(120.0, "auth")[1] is True
    schedule.connected()
    assert schedule.failed(200.0, "auth") == (30.0, True)  # a new outage is news again


def test_a_turn_brings_the_next_attempt_forward_once() -> None:
    schedule = ConnectSchedule(first_s=0.5, max_s=30.0)
    schedule.failed(0.0, "auth")  # next attempt at 30 s
    assert schedule.wanted(5.0, turn=1) and schedule.due(5.0)
    schedule.failed(5.0, "auth")  # refused again: 30 s more
    assert not schedule.wanted(6.0, turn=1)  # the same turn asks every period: once is enough
    assert not schedule.due(6.0)
    assert schedule.wanted(7.0, turn=2) and schedule.due(7.0)
    assert not ConnectSchedule().wanted(0.0, turn=3)  # already due: nothing to move


@dataclass
class FakeClient:
    """Stands in for `RealtimeClient` in the link's attempts: each `connect()` takes the next outcome."""

    outcomes: list[RealtimeConnectError | None]
    connected: bool = False
    ended: None = None
    closed: int = field(default=0)

    def connect(self) -> ConnectTimes:
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome
        self.connected = True
        return ConnectTimes(1.0, 5.0, 30.0, 1.0, 37.0)

    def close(self) -> None:
        self.closed += 1


def test_the_link_says_a_wrong_key_once_and_counts_every_attempt() -> None:
    now = [0.0]
    reports: list[tuple[bool, str, str]] = []
    config = RealtimeConfig(base_url="http://127.0.0.1:9/v1", model="m", api_key=KEY)
    link = RealtimeLink(config, lambda up, cause, detail: reports.append((up, cause, detail)), monotonic=lambda: now[0])
    refused = RealtimeConnectError("auth", "the realtime server rejected the API key (HTTP 401); check it")
    client = FakeClient([refused, refused, refused, None])
    for at_s in (0.0, 30.0, 45.0):
        now[0] = at_s
        link.attempt(client)  # type: ignore[arg-type]  # the fake has what the link uses
        assert not link.up
    assert link.schedule.next_attempt_s == 75.0
    now[0] = 50.0
    assert not link.begin_turn(7)  # a turn needs the call: the next attempt is now
    assert link.schedule.due(50.0)
    link.attempt(client)  # type: ignore[arg-type]
    assert [(up, cause) for up, cause, _ in reports] == [(False, "auth"), (True, "connected")]
    assert "retrying every 30 s, and at each turn; a new key needs a restart of spine" in reports[0][2]
    assert link.attempts == {"auth": 3, "connected": 1}
    assert link.counts == {"auth": 1, "connected": 1}


# ---------------------------------------------------------------------------------------------- the word clock


def test_words_are_placed_when_complete_and_end_where_the_speaking_rate_puts_them() -> None:
    clock = WordClock()
    clock.feed("Hi th")
    assert clock.take() == [("Hi", 2400)]  # 150 ms (the shortest word); "th" may still grow
    clock.feed("ere. Good")
    clock.feed("bye")
    assert clock.take(until_samples=8000) == [("there.", 7920)]  # 150 + 70 gap + 5 letters x 55 ms = 495 ms
    assert clock.take(until_samples=8000) == []  # handed out once
    clock.finish()
    # after a sentence the gap is 250 ms: "Goodbye" (7 letters, 385 ms) ends at 495 + 250 + 385 = 1130 ms
    assert clock.take() == [("Goodbye", 18080)]
    assert clock.text == "Hi there. Goodbye"


def test_the_scale_stretches_every_end_and_is_learned_part_way_within_bounds() -> None:
    fast, slow = WordClock(scale=1.0), WordClock(scale=2.0)
    for clock in (fast, slow):
        clock.feed("one two three")
        clock.finish()
    assert [end * 2 for _, end in fast.take()] == [end for _, end in slow.take()]
    assert word_ms("supercalifragilistic") == (600.0, 70.0)  # capped
    assert word_ms('"end."') == (165.0, 250.0)
    text = "one two three"
    model_ms = modelled_ms(text)
    heard_twice_as_long = round(2 * model_ms * SPINE_RATE_HZ / 1000)
    assert learned_scale(1.0, text, heard_twice_as_long) == pytest.approx(1.5)  # half way towards 2
    assert learned_scale(1.9, text, 100 * heard_twice_as_long) == 2.0  # a wild answer is bounded
    assert learned_scale(0.6, text, 1) == 0.5
    assert learned_scale(1.2, "", 16000) == 1.2 and learned_scale(1.2, text, 0) == 1.2


# ---------------------------------------------------------------------------------------------- the daemon


PEER_REPLY = "Here I am again."
WAIT_S = 90.0
"""Upper bound for anything in a daemon run to happen, generous for a loaded machine."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # free once closed: nobody listens there


class LogWatch:
    """Follows a run's events.jsonl on a thread: when each event type was first seen (monotonic seconds), and
    actions to run once a type appears (e.g. healing the peer)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen_at: dict[str, float] = {}
        self._actions: list[tuple[str, Callable[[], None]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def on(self, kind: str, action: Callable[[], None]) -> LogWatch:
        self._actions.append((kind, action))
        return self

    def __enter__(self) -> LogWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _follow(self) -> None:
        while not self._stop.wait(0.02):
            if not self.path.exists():
                continue
            text = self.path.read_text(encoding="utf-8")
            for kind in {kind for kind, _ in self._actions} | {"EngineFailed", "RemoteLinkChanged"}:
                if kind not in self.seen_at and f'"type":"{kind}"' in text.replace(", ", ","):
                    self.seen_at[kind] = time.monotonic()
                    for wanted, action in self._actions:
                        if wanted == kind:
                            action()


def scene_of(text: str, tmp: Path) -> Scene:
    path = tmp / "scene.toml"
    path.write_text(text, encoding="utf-8")
    return load_scene(path)


def realtime_config(models_dir: Path, tmp: Path, base_url: str, **reply: Any) -> Config:
    key_file = tmp / "key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    config = Config()
    changes: dict[str, Any] = {"backend": "realtime", "base_url": base_url, "model": "spine-test-peer"}
    changes.update(api_key_env=None, api_key_file=key_file, **reply)
    return replace(config, models=replace(config.models, dir=models_dir), reply=replace(config.reply, **changes))


def run_scene(config: Config, scene: Scene, out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    summary = demo(config, scene, "faults", out, "wall")
    records = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    return summary, records


def events_of(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r["event"] for r in records if r.get("event", {}).get("type") == kind]


def link_changes(records: list[dict[str, Any]]) -> list[tuple[bool, str]]:
    return [(e["up"], e["cause"]) for e in events_of(records, "RemoteLinkChanged")]


def states(records: list[dict[str, Any]]) -> list[str]:
    return [str(r["state"]) for r in records if "state" in r]


def replying(reply: str) -> Callable[[PeerTurn], str]:
    return lambda _turn: reply


TWO_TURNS = """
[[say]]
text = "Hey Jarvis. What time is it?"
at_s = 1.0

[[say]]
text = "Hey Jarvis. Tell me a story."
after = "silent"
delay_s = 2.0
"""


@pytest.fixture
def peers() -> Iterator[list[RealtimePeer]]:
    """Peers a test starts; each stopped at the end."""
    started: list[RealtimePeer] = []
    yield started
    for peer in started:
        peer.stop()


@pytest.mark.slow
def test_nobody_listening_at_start_the_daemon_apologises_then_the_peer_comes_and_answers(
    tmp_path: Path, models_dir: Path, peers: list[RealtimePeer]
) -> None:
    port = free_port()
    config = realtime_config(models_dir, tmp_path, f"http://127.0.0.1:{port}/v1")
    peer = RealtimePeer(PeerConfig(api_key=KEY, reply=replying(PEER_REPLY)), port=port)

    def start_the_peer() -> None:
        peers.append(peer)
        peer.start()

    with LogWatch(tmp_path / "out" / "events.jsonl").on("EngineFailed", start_the_peer):
        summary, records = run_scene(config, scene_of(TWO_TURNS, tmp_path), tmp_path / "out")
    # The first turn: the call was down while the user spoke; the apology, then rest.
    (failed,) = events_of(records, "EngineFailed")
    assert "not up while the user spoke" in failed["reason"]
    assert "Announcing" in states(records)
    first, second = summary["turns"]
    assert first["heard_text"] == ""
    # The link: down from the start (said once, however many attempts), up once the peer listens.
    changes = link_changes(records)
    assert changes == [(False, "unreachable"), (True, "connected")], changes
    (down, _up) = events_of(records, "RemoteLinkChanged")
    assert f"127.0.0.1:{port}" in down["detail"] and "retrying" in down["detail"]
    # The next turn was streamed to the new call and answered by it, heard to its end.
    assert second["heard_text"] == PEER_REPLY and not second["interrupted"]
    call = peer.last_call()
    assert call.user_items and call.user_items[-1].audio is not None
    assert len(call.user_items[-1].audio) / 48_000 > 0.8  # the utterance, from its pre-roll on
    assert states(records)[-2:] == ["Idle", "Stopping"]


@pytest.mark.slow
def test_a_server_error_at_start_with_the_local_fallback_answers_locally_then_the_model_answers(
    tmp_path: Path, models_dir: Path, peers: list[RealtimePeer]
) -> None:
    peer = RealtimePeer(PeerConfig(api_key=KEY, reply=replying(PEER_REPLY), fault="http_500"))
    peers.append(peer)
    config = realtime_config(models_dir, tmp_path, peer.start(), realtime_fallback="local")

    def heal() -> None:
        peer.config = replace(peer.config, fault="none")

    with LogWatch(tmp_path / "out" / "events.jsonl").on("TtsChunkReady", heal):
        summary, records = run_scene(config, scene_of(TWO_TURNS, tmp_path), tmp_path / "out")
    assert events_of(records, "EngineFailed") == []  # no apology: the local responder answered
    first, second = summary["turns"]
    assert first["heard_text"].startswith("It's") and not first["interrupted"], first  # Piper said the time
    changes = link_changes(records)
    assert changes == [(False, "server"), (True, "connected")], changes
    assert "HTTP 500" in events_of(records, "RemoteLinkChanged")[0]["detail"]
    assert len(peer.authorizations) >= 2  # refused at least once, then called
    assert second["heard_text"] == PEER_REPLY
    assert states(records)[-2:] == ["Idle", "Stopping"]


ONE_TURN = """
[[say]]
text = "Hey Jarvis. What time is it?"
at_s = 1.0
"""


@pytest.mark.slow
def test_a_wrong_key_is_said_once_never_shown_and_the_turn_gets_the_apology(
    tmp_path: Path,
    models_dir: Path,
    peers: list[RealtimePeer],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    peer = RealtimePeer(PeerConfig(api_key="sk-the-one-the-server-wants"))
    peers.append(peer)
    config = realtime_config(models_dir, tmp_path, peer.start())
    summary, records = run_scene(config, scene_of(ONE_TURN, tmp_path), tmp_path / "out")
    assert len(peer.authorizations) >= 2  # at start, and again when the turn needed the call
    changes = link_changes(records)
    assert changes == [(False, "auth")], changes
    detail = events_of(records, "RemoteLinkChanged")[0]["detail"]
    assert "rejected the API key (HTTP 401: invalid_api_key); check [reply] api_key_file" in detail
    assert "a new key needs a restart" in detail
    (failed,) = events_of(records, "EngineFailed")
    assert "not up while the user spoke" in failed["reason"]
    assert "Announcing" in states(records) and states(records)[-2:] == ["Idle", "Stopping"]
    assert summary["turns"][0]["heard_text"] == ""
    out, err = capfd.readouterr()
    everything = "\n".join([out, err, caplog.text, (tmp_path / "out" / "events.jsonl").read_text()])
    assert KEY not in everything and KEY[-8:] not in everything


@pytest.mark.slow
def test_ice_that_never_connects_is_a_media_failure_and_the_link_comes_back(
    tmp_path: Path, models_dir: Path, peers: list[RealtimePeer]
) -> None:
    peer = RealtimePeer(PeerConfig(api_key=KEY, reply=replying(PEER_REPLY), fault="ice_unanswered"))
    peers.append(peer)
    config = realtime_config(models_dir, tmp_path, peer.start())
    scene = scene_of(
        "duration_s = 28.0\n" + ONE_TURN + '[[say]]\ntext = "Hey Jarvis. Tell me a story."\nat_s = 16.0\n', tmp_path
    )

    def heal() -> None:
        peer.config = replace(peer.config, fault="none")

    with LogWatch(tmp_path / "out" / "events.jsonl").on("RemoteLinkChanged", heal) as watch:
        began = time.monotonic()
        summary, records = run_scene(config, scene, tmp_path / "out")
    first, second = summary["turns"]
    # The first turn came while the call was being made (ICE checking): the apology, at once.
    (failed,) = events_of(records, "EngineFailed")
    assert "not up while the user spoke" in failed["reason"]
    assert first["heard_text"] == ""
    changes = link_changes(records)
    assert changes[:2] == [(False, "media"), (True, "connected")], changes
    detail = events_of(records, "RemoteLinkChanged")[0]["detail"]
    assert "did not come up within 10 s (ICE checking)" in detail and "UDP" in detail
    assert watch.seen_at["RemoteLinkChanged"] - began < 40.0  # the media timeout (10 s) after the models loaded
    assert peer.calls[0].ended is not None and peer.calls[0].sent == []  # no channel ever opened
    assert second["heard_text"] == PEER_REPLY


@pytest.mark.slow
def test_a_stalled_channel_mid_answer_ends_the_turn_within_the_stall_timeout_and_the_next_turn_works(
    tmp_path: Path, models_dir: Path, peers: list[RealtimePeer]
) -> None:
    stall_s = 2.0
    healed = threading.Event()
    story = "Once upon a time there was a test peer that told a very long story. " * 4
    peer = RealtimePeer(
        PeerConfig(
            api_key=KEY,
            reply=lambda _turn: PEER_REPLY if healed.is_set() else story,
            fault="stall_mid_answer",
            fault_after_ms=1500.0,
        )
    )
    peers.append(peer)
    config = realtime_config(models_dir, tmp_path, peer.start(), stall_timeout_s=stall_s)
    scene = scene_of(TWO_TURNS.replace("What time is it?", "Tell me a story.", 1), tmp_path)
    last_sent_s: list[float] = []

    def note_the_stall_and_heal() -> None:
        last_sent_s.append(peer.calls[0].last_sent_at_s or 0.0)
        peer.config = replace(peer.config, fault="none")
        healed.set()

    with LogWatch(tmp_path / "out" / "events.jsonl").on("EngineFailed", note_the_stall_and_heal) as watch:
        summary, records = run_scene(config, scene, tmp_path / "out")
    (failed,) = events_of(records, "EngineFailed")
    assert "stalled" in failed["reason"] and f"stall_timeout_s = {stall_s:g}" in failed["reason"]
    # The turn ended within the stall timeout of the server's last event (plus the log watch's and a loaded
    # machine's slack), and not before it: it was the stall that ended it.
    ended_after_s = watch.seen_at["EngineFailed"] - last_sent_s[0]
    print(f"\nthe stalled turn ended {ended_after_s:.2f} s after the server's last event (stall_timeout_s {stall_s:g})")
    assert stall_s - 0.2 <= ended_after_s <= stall_s + 2.0, ended_after_s
    first, second = summary["turns"]
    assert first["heard_text"] and story.startswith(first["heard_text"]), first  # what played before the stall
    assert "Announcing" in states(records)
    changes = link_changes(records)
    assert changes == [(True, "connected"), (False, "stalled"), (True, "connected")], changes
    assert second["heard_text"] == PEER_REPLY and not second["interrupted"]
    # The cut is the core's as for any failed reply: nothing of the cut answer past one period after the decision
    # but, at most, its 4 ms fade (on the wall clock the card's thread may run a period ahead of the loop).
    assert summary["stale_samples_played"] <= 64


@pytest.mark.slow
def test_a_typed_request_is_sent_as_text_and_answered_in_the_models_voice(
    tmp_path: Path, models_dir: Path, peers: list[RealtimePeer]
) -> None:
    def echo_the_text(turn: PeerTurn) -> str:
        return f"You typed {turn.user_items[-1].text}" if turn.user_items[-1].text else "No text."

    peer = RealtimePeer(PeerConfig(api_key=KEY, reply=echo_the_text))
    peers.append(peer)
    config = realtime_config(models_dir, tmp_path, peer.start())
    scene = scene_of("duration_s = 9.0\n", tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    rig = Rig(config, scene, load_engines(config, deterministic=False), out / "events.jsonl", "wall")

    def type_once_up() -> None:
        link = rig.realtime
        assert link is not None
        if link.wait_connected(WAIT_S):
            rig.inbox.post(TextTyped("tell me a joke", "monitor"))

    typist = threading.Thread(target=type_once_up, daemon=True)
    typist.start()
    run_wall(rig, scene)
    typist.join(5)
    records = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    call = peer.last_call()
    assert call.received_types()[1:] == ["conversation.item.create", "response.create"]
    assert [item.text for item in call.user_items] == ["tell me a joke"]
    audio = events_of(records, "RemoteAudioReady")
    assert " ".join(e["text"] for e in audio if e["text"]) == "You typed tell me a joke"
    assert events_of(records, "EngineFailed") == []
    assert peer_summary(peer)["items"][0]["status"] == "completed"
