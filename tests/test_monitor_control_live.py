"""Remote control over a live aiortc data channel: an admin's typed request is answered by the real machine
(logged and replayable), and a flood of control messages is refused beyond the rate while the session stays
usable."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from device.core import codec
from device.core import commands as cmd
from device.core import events as ev
from device.core.states import initial
from device.monitor.feed import MonitorFeed
from device.monitor.server import Monitor
from device.monitor.token import load_or_create_tokens
from device.runtime.eventlog import EventLog
from device.runtime.loop import Inbox, SpineLoop
from device.settings.monitor import MonitorConfig
from tests.core_script import CONFIG
from tests.test_monitor_server import make_monitor
from tests.test_monitor_webrtc import WAIT_S, Client, run, until

RATE_HZ = 16000


class Recorded:
    """The executor's place: the commands the loop would carry out, kept."""

    def __init__(self) -> None:
        self.commands: list[cmd.Command] = []

    def execute(self, commands: tuple[cmd.Command, ...], now: int) -> None:
        self.commands.extend(commands)

    def playback_ended(self, epoch: int) -> None:
        pass


def test_a_typed_request_over_the_channel_is_answered_by_the_machine(tmp_path: Path) -> None:
    config = MonitorConfig(enabled=True, port=0, state_dir=str(tmp_path / "state"), allow_control=True)
    tokens = load_or_create_tokens(tmp_path / "state")
    log_path = tmp_path / "events.jsonl"
    feed = MonitorFeed(config.feed_records, 800, RATE_HZ)
    executor, inbox = Recorded(), Inbox()
    loop = SpineLoop(initial(CONFIG), EventLog(log_path, CONFIG), executor, [feed.observe])
    monitor = Monitor(config, tokens, feed, inbox.post, log_path)
    monitor.start()

    async def test() -> None:
        client = Client()
        await client.connect(f"http://127.0.0.1:{monitor.port}", tokens.admin)
        client.send({"type": "say", "text": "what time is it"})
        result = await client.next("control_result")
        assert (result["ok"], result["event"]) == (True, "TextTyped")
        await until(lambda: fsm_round(inbox, loop, 16000) > 0)  # the FSM thread's part, done here
        step = await client.next("step")
        assert (step["event"]["type"], step["from"], step["state"]) == ("TextTyped", "Idle", "Thinking")
        for bad, phrase in (("", "empty"), ("x" * 501, "at most 500"), ("what\ntime", "U+000A")):
            client.send({"type": "say", "text": bad})
            refused = await client.next("control_result")
            assert refused["ok"] is False and phrase in refused["error"]
        await client.peer.close()

    try:
        run(test)
    finally:
        monitor.stop()
    assert inbox.drain() == []  # the refused ones never became events
    answered = cmd.StartReply(1, "what time is it", ())
    assert answered in executor.commands
    records = [codec.decode(r["event"]) for r in read_log(log_path) if "event" in r]
    assert records == [ev.TextTyped("what time is it", "monitor")]
    outcomes = [r for r in read_log(log_path) if "state" in r]
    assert outcomes[-1]["state"] == "Thinking" and codec.encode(answered) in outcomes[-1]["commands"]


def test_a_message_flood_over_the_channel_is_refused_and_the_session_stays_usable(tmp_path: Path) -> None:
    monitor, posted = make_monitor(tmp_path, allow_control=True, max_messages_per_s=5.0)
    tokens = load_or_create_tokens(tmp_path / "state")
    flood = 40

    async def test() -> None:
        client = Client()
        await client.connect(f"http://127.0.0.1:{monitor.port}", tokens.admin)
        for index in range(flood):
            client.send({"type": "mute", "muted": index % 2 == 0})
        answers = [await next_answer(client) for _ in range(flood)]
        accepted = [a for a in answers if a["kind"] == "control_result" and a["ok"]]
        refused = [a for a in answers if a["kind"] == "error"]
        assert len(accepted) + len(refused) == flood
        assert 5 <= len(accepted) <= 8  # a burst of 5, and what refills while the flood arrives (5 a second)
        assert all("too many messages" in a["error"] for a in refused)
        # The session is still open: once the budget refills, a control goes through again.
        assert len(monitor.sessions.live) == 1
        await until(lambda: retry_listen(client))
        assert (await client.next("listen_result"))["on"] is True
        monitor.feed.observe(16000, ev.WakeDetected("hey_jarvis", 0.9, 16000), "Listening", ())
        assert (await client.next("step"))["state"] == "Listening"
        await client.peer.close()

    try:
        run(test)
    finally:
        monitor.stop()
    assert 5 <= len(posted) <= 8 and all(isinstance(e, ev.MuteChanged) for e in posted)


# ------------------------------------------------------------------------------------------------ helpers


def fsm_round(inbox: Inbox, loop: SpineLoop, now: int) -> int:
    """What the FSM thread does with the inbox each round: step every event posted; how many there were."""
    events = inbox.drain()
    for event in events:
        loop.handle(event, now)
    return len(events)


async def next_answer(client: Client) -> dict[str, Any]:
    while True:
        message = await asyncio.wait_for(client.received.get(), WAIT_S)
        if message["kind"] in ("control_result", "error"):
            return message


def retry_listen(client: Client) -> bool:
    """Ask for audio; true once an answer other than a refusal is waiting (refusals are taken off the queue)."""
    while not client.received.empty():
        message = client.received.get_nowait()
        if message["kind"] == "listen_result":
            client.received.put_nowait(message)
            return True
    client.send({"type": "listen", "on": True})
    return False


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()[1:]]
