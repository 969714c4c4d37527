"""Text a chat server sends never reaches a terminal or a log line raw (issue 11, case 4): control bytes in an
error body, a mid-stream error or the reply itself are escaped in messages (`printable`) and dropped from the
reply's text. Against the fake server on loopback, over real HTTP."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime

import pytest

from device.core.events import EngineFailed, Event
from device.reply.openai import OpenAIConfig, OpenAIResponder, ReplyBackendError, parse_chunk
from device.reply.openai_config import printable
from device.runtime.job_threads import ThreadRunner
from device.runtime.work import Costs, reply_job
from device.testing.fake_llm import FakeLlmConfig, FakeLlmServer, Fault

HOSTILE = "\x1b[31mboom\x1b[0m \x00\x07\x9b2J \u202eevil\x1b]0;title\x07 end"
FAST = FakeLlmConfig(first_token_delay_s=0.01, tokens_per_s=400.0, error_message=HOSTILE)
WAIT_S = 5.0


@pytest.fixture
def server() -> Iterator[FakeLlmServer]:
    with FakeLlmServer(FAST) as running:
        yield running


def failure_message(server: FakeLlmServer) -> str:
    with pytest.raises(ReplyBackendError) as caught:
        list(OpenAIResponder(OpenAIConfig(base_url=server.base_url, model="m")).open("hello", ()))
    return str(caught.value)


def test_printable_escapes_every_control_character_and_keeps_the_rest() -> None:
    assert printable("plain text, ünïcödé 東京") == "plain text, ünïcödé 東京"
    shown = printable(HOSTILE)
    assert shown.isprintable()
    assert shown.startswith(r"\x1b[31mboom\x1b[0m \x00\x07\x9b2J \u202eevil")
    for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)]:
        assert printable(chr(code)).isprintable()


@pytest.mark.parametrize("fault", ["http_500_raw", "http_500", "error_mid_stream"])
def test_an_error_from_the_server_is_shown_with_its_control_bytes_escaped(server: FakeLlmServer, fault: Fault) -> None:
    server.config = replace(FAST, fault=fault, fault_after_tokens=1)
    message = failure_message(server)
    assert message.isprintable(), repr(message)
    assert "boom" in message and "evil" in message  # still says what the server said
    if fault != "http_500":  # (a JSON body carries them as \u001b already; the raw ones are escaped here)
        assert r"\x1b[31mboom" in message


def test_the_failure_reported_to_the_core_is_printable(server: FakeLlmServer) -> None:
    server.config = replace(FAST, fault="http_500_raw")
    inbox: queue.SimpleQueue[Event] = queue.SimpleQueue()
    runner = ThreadRunner(inbox.put, 16000)
    responder = OpenAIResponder(OpenAIConfig(base_url=server.base_url, model="m"))
    try:
        runner.start(reply_job(1, "hello", (), responder, datetime(2026, 1, 1), Costs(0, 0.0, 0, 0.0, 0, 0)), 0)
        failed = inbox.get(timeout=WAIT_S)
    finally:
        runner.stop()
    assert isinstance(failed, EngineFailed) and "HTTP 500" in failed.reason and failed.reason.isprintable()


def test_control_characters_in_the_reply_text_are_dropped(server: FakeLlmServer) -> None:
    server.config = replace(FAST, reply="Hello\x1b[2J there\x00. Tab\tstays.")
    responder = OpenAIResponder(OpenAIConfig(base_url=server.base_url, model="m"))
    assert "".join(piece.text for piece in responder.open("hello", ())) == "Hello[2J there. Tab\tstays."
    assert parse_chunk('{"choices": [{"delta": {"content": "a\\u001b\\u0085b\\nc"}}]}').text == "ab\nc"


def test_a_malformed_line_is_quoted_with_its_control_bytes_escaped() -> None:
    with pytest.raises(ReplyBackendError) as caught:
        parse_chunk("not json \x1b[2J\x00")
    assert str(caught.value).isprintable() and r"\x1b[2J\x00" in str(caught.value)
