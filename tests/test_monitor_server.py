"""The monitor's HTTP side: tokens, 401 without one, /metrics parsed as Prometheus exposition, offer limits."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from prometheus_client.parser import text_string_to_metric_families

from device.core import commands as cmd
from device.core import events as ev
from device.core.events import Event
from device.errors import UserError
from device.monitor.feed import MonitorFeed
from device.monitor.metrics import AudioHealth
from device.monitor.server import Monitor, complete_steps
from device.monitor.token import ADMIN_FILE, READ_ONLY_FILE, Access, load_or_create_tokens
from device.runtime.eventlog import EventLog, read_log
from device.runtime.logparts import part_path
from device.settings.monitor import MonitorConfig
from tests.test_eventlog_parts import CONFIG, conversations, record

RATE_HZ = 16000


def make_monitor(tmp_path: Path, **settings: Any) -> tuple[Monitor, list[Event]]:
    config = MonitorConfig(enabled=True, port=0, state_dir=str(tmp_path / "state"), **settings)
    posted: list[Event] = []
    log = tmp_path / "events.jsonl"
    log.write_text('{"spine_log":1}\n{"t":0,"event":{"type":"Started"}}\n{"t":0,"state":"Idle","commands":[]}\n')
    monitor = Monitor(
        config,
        load_or_create_tokens(tmp_path / "state"),
        MonitorFeed(config.feed_records, 800, RATE_HZ),
        posted.append,
        log,
        lambda: AudioHealth(xruns=2, underrun_samples=160, output_latency_s=0.13, model_non_finite_outputs=3),
    )
    monitor.start()
    return monitor, posted


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Monitor, str, str]]:
    monitor, _posted = make_monitor(tmp_path)
    tokens = load_or_create_tokens(tmp_path / "state")
    yield monitor, f"http://127.0.0.1:{monitor.port}", tokens.read_only
    monitor.stop()


def fetch(method: str, url: str, **kwargs: Any) -> tuple[int, str, dict[str, str]]:
    async def go() -> tuple[int, str, dict[str, str]]:
        async with ClientSession() as client, client.request(method, url, **kwargs) as answer:
            return answer.status, await answer.text(), dict(answer.headers)

    return asyncio.run(go())


def test_tokens_are_created_once_with_mode_0600_and_reused(tmp_path: Path) -> None:
    first = load_or_create_tokens(tmp_path)
    again = load_or_create_tokens(tmp_path)
    assert first == again and first.read_only != first.admin and len(first.read_only) >= 32
    for name in (READ_ONLY_FILE, ADMIN_FILE):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert first.access_of(first.admin) is Access.ADMIN
    assert first.access_of(first.read_only) is Access.READ_ONLY
    assert first.access_of(first.read_only[:-1] + "x") is Access.NONE
    assert first.access_of(None) is Access.NONE


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    load_or_create_tokens(tmp_path)
    (tmp_path / READ_ONLY_FILE).chmod(0o644)
    with pytest.raises(UserError, match="chmod 600"):
        load_or_create_tokens(tmp_path)


def test_every_route_but_login_needs_the_token(served: tuple[Monitor, str, str]) -> None:
    _monitor, base, token = served
    for method, path in (("GET", "/"), ("GET", "/log"), ("GET", "/diagram.svg"), ("POST", "/offer")):
        status, text, _ = fetch(method, base + path)
        assert status == 401 and "spine monitor-url" in text, path
        assert fetch(method, base + path, headers={"Authorization": "Bearer wrong"})[0] == 401
    assert fetch("GET", base + "/", headers={"Authorization": f"Bearer {token}"})[0] == 200
    assert fetch("GET", base + "/login")[0] == 200  # the sign-in page itself carries no data


def test_login_exchanges_the_token_for_an_http_only_cookie(served: tuple[Monitor, str, str]) -> None:
    _monitor, base, token = served
    assert fetch("POST", base + "/login", headers={"Authorization": "Bearer nope"})[0] == 401
    status, _, headers = fetch("POST", base + "/login", headers={"Authorization": f"Bearer {token}"})
    assert status == 204
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    assert fetch("GET", base + "/diagram.svg", cookies={"spine_monitor_token": token})[0] == 200


def test_the_diagram_has_every_state_and_the_log_download_ends_on_a_whole_step(
    served: tuple[Monitor, str, str],
) -> None:
    _monitor, base, token = served
    auth = {"Authorization": f"Bearer {token}"}
    status, svg, _ = fetch("GET", base + "/diagram.svg", headers=auth)
    assert status == 200 and 'id="state-Idle"' in svg and 'id="state-Speaking"' in svg and "edge-Idle-Listening" in svg
    status, log, headers = fetch("GET", base + "/log", headers=auth)
    assert status == 200 and "attachment" in headers["Content-Disposition"] and log.endswith('"commands":[]}\n')
    half_written = b'{"h":1}\n{"t":0,"event":{}}\n{"t":0,"state":"Idle","commands":[]}\n{"t":5,"event":{}}\n{"t":5,"st'
    assert complete_steps(half_written) == b'{"h":1}\n{"t":0,"event":{}}\n{"t":0,"state":"Idle","commands":[]}\n'


def test_the_log_download_of_a_run_that_went_on_in_parts_is_all_of_them_as_one_log(tmp_path: Path) -> None:
    monitor, _posted = make_monitor(tmp_path)
    try:
        first = tmp_path / "events.jsonl"  # the log the monitor offers, written anew by a long run
        record(EventLog(first, CONFIG, part_bytes=4000), conversations(30))
        assert part_path(first, 4).is_file()
        token = load_or_create_tokens(tmp_path / "state").read_only
        status, log, _ = fetch(
            "GET", f"http://127.0.0.1:{monitor.port}/log", headers={"Authorization": f"Bearer {token}"}
        )
    finally:
        monitor.stop()
    assert status == 200
    downloaded = tmp_path / "downloaded" / "events.jsonl"
    downloaded.parent.mkdir()
    downloaded.write_text(log)
    one, parts = read_log(downloaded), read_log(first)
    assert [(s.t, s.event, s.state) for s in one.steps] == [(s.t, s.event, s.state) for s in parts.steps]
    assert one.broken_links == () and len(one.steps) == 90  # three steps a conversation, every one


def barge_in_run(feed: MonitorFeed) -> None:
    """Wake, a reply that speaks, the user's voice cuts it 0.25 s after its onset, a leaked job, and xruns that
    raised the stream's latency."""
    feed.observe(0, ev.Started(), "Idle", ())
    feed.observe(16000, ev.WakeDetected("hey_jarvis", 0.9, 16000), "Listening", ())
    feed.observe(20000, ev.SpeechStarted(19000), "Hearing", ())
    feed.observe(40000, ev.SpeechEnded(36000), "Transcribing", ())
    feed.observe(44000, ev.TranscriptReady(1, "time", 40000), "Thinking", ())
    feed.observe(
        48000, ev.TtsChunkReady(1, 0, "It is noon.", 16000, (8000, 16000)), "Speaking", (cmd.OpenPlayback(2, 1),)
    )
    feed.observe(50000, ev.VoiceHint(49000, 0.8), "Paused", (cmd.PausePlayback(2),))
    feed.observe(51000, ev.SpeechStarted(49000), "Hearing", (cmd.CancelTurn(1), cmd.CutPlayback(2)))
    feed.observe(53000, ev.PlaybackStopped(2, 3000), "Hearing", ())
    feed.observe(54000, ev.JobLeaked(1, "tts", 250.0), "Hearing", ())
    feed.observe(55000, ev.AudioXrun(3, 0), "Hearing", ())
    feed.observe(55000, ev.AudioLatencyRaised(70.0, "ran dry 3 times"), "Hearing", ())


def test_metrics_parse_as_prometheus_exposition_with_spine_names_and_base_units(
    served: tuple[Monitor, str, str],
) -> None:
    monitor, base, _token = served
    barge_in_run(monitor.feed)
    status, text, _ = fetch("GET", base + "/metrics")  # loopback: no token needed by default
    assert status == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert all(name.startswith("spine_") for name, _ in samples)
    assert samples[("spine_state", (("state", "Hearing"),))] == 1
    assert samples[("spine_state", (("state", "Idle"),))] == 0
    assert samples[("spine_transitions_total", (("from", "Idle"), ("to", "Listening")))] == 1
    assert samples[("spine_barge_ins_total", (("signal", "voice"),))] == 1
    assert samples[("spine_barge_ins_total", (("signal", "wake_word"),))] == 0
    assert samples[("spine_leaked_jobs_total", ())] == 1
    assert samples[("spine_steps_total", ())] == 12
    assert samples[("spine_onset_to_silence_seconds_count", ())] == 1
    assert samples[("spine_onset_to_silence_seconds_sum", ())] == pytest.approx((53000 - 49000) / RATE_HZ)
    assert samples[("spine_turn_latency_seconds_count", ())] == 1
    assert samples[("spine_turn_latency_seconds_sum", ())] == pytest.approx((48000 - 36000) / RATE_HZ)
    assert samples[("spine_xruns_total", ())] == 2 and samples[("spine_underrun_samples_total", ())] == 160
    assert samples[("spine_audio_output_latency_seconds", ())] == 0.13
    assert samples[("spine_audio_latency_raises_total", ())] == 1
    assert samples[("spine_model_non_finite_outputs_total", ())] == 3
    assert samples[("spine_process_cpu_seconds_total", ())] > 0
    assert samples[("spine_process_resident_memory_bytes", ())] > 1e6
    assert samples[("spine_monitor_sessions", ())] == 0


def test_metrics_can_require_the_token(tmp_path: Path) -> None:
    monitor, _ = make_monitor(tmp_path, metrics_access="token")
    try:
        token = load_or_create_tokens(tmp_path / "state").read_only
        url = f"http://127.0.0.1:{monitor.port}/metrics"
        assert fetch("GET", url)[0] == 401
        assert fetch("GET", url, headers={"Authorization": f"Bearer {token}"})[0] == 200
    finally:
        monitor.stop()


def test_offers_that_cannot_be_used_get_a_clear_4xx(served: tuple[Monitor, str, str]) -> None:
    monitor, base, token = served
    auth = {"Authorization": f"Bearer {token}"}
    cases = [
        (b"not json", 400, "not JSON"),
        (b'{"type": "answer", "sdp": "v=0"}', 400, "expected"),
        (b'{"type": "offer", "sdp": "hello"}', 400, "v=0"),
        (b'{"type": "offer", "sdp": "v=0\\r\\no=- 1 1 IN IP4 0.0.0.0\\r\\nm=nonsense\\r\\n"}', 400, "malformed offer"),
        (b"x" * (monitor.config.max_offer_bytes + 1), 413, "max_offer_bytes"),
    ]
    for body, status, phrase in cases:
        got, text, _ = fetch("POST", base + "/offer", data=body, headers=auth)
        assert (got, phrase in text) == (status, True), (body[:40], text)
    assert monitor.sessions.live == []  # a refused offer leaves no peer behind
