"""The OpenAI-compatible reply client against the fake server, over real HTTP on loopback.

No sleeps here: the server paces the tokens, and tests wait on what the server records (`server.wait`).
Delays are a few ms so the file runs in seconds; one test checks the real pacing with generous bounds.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device.core.memory import Message
from device.reply.local import TextPiece
from device.reply.openai import (
    CUT_BEFORE_ANY_WORD,
    INTERRUPTED_MARKER,
    OpenAIConfig,
    OpenAIResponder,
    ReplyBackendError,
    SseLines,
    load_api_key,
    messages_for,
    parse_chunk,
)
from device.testing.fake_llm import DEFAULT_REPLY, FakeLlmConfig, FakeLlmServer, Fault, echo_reply, tokens_of
from device.testing.fake_llm_cli import main

FAST = FakeLlmConfig(first_token_delay_s=0.02, tokens_per_s=400.0)
KEY = "sk-test-do-not-print-1234"
HISTORY = (
    Message("user", "tell me a story"),
    Message("assistant", "Once upon a time", interrupted=True),
    Message("user", "what time is it"),
    Message("assistant", "", interrupted=True),
    Message("user", "thanks"),
    Message("assistant", "You're welcome."),
)
WAIT_S = 5.0  # upper bound for the server to record something; tests pass as soon as it does


@pytest.fixture
def server() -> Iterator[FakeLlmServer]:
    with FakeLlmServer(FAST) as running:
        yield running


def client(server: FakeLlmServer, **overrides: Any) -> OpenAIResponder:
    return OpenAIResponder(OpenAIConfig(base_url=server.base_url, model="fake-model", **overrides))


def text_of(responder: OpenAIResponder, prompt: str = "hello", history: tuple[Message, ...] = ()) -> str:
    return "".join(piece.text for piece in responder.open(prompt, history))


def failure(responder: OpenAIResponder, prompt: str = "hello") -> tuple[str, str, float]:
    """The error a stream ends with, the text that came before it, and how long it took."""
    received: list[str] = []
    began = time.monotonic()
    with pytest.raises(ReplyBackendError) as caught:
        for piece in responder.open(prompt, ()):
            received.append(piece.text)
    return str(caught.value), "".join(received), time.monotonic() - began


# ---------------------------------------------------------------------------------------------- the normal path


def test_a_normal_stream_gives_the_exact_reply_and_ends(server: FakeLlmServer) -> None:
    stream = client(server).open("hello", ())
    pieces = list(stream)
    assert all(isinstance(piece, TextPiece) for piece in pieces)
    assert [piece.text for piece in pieces] == tokens_of(DEFAULT_REPLY)
    assert list(stream) == []  # ended for good
    assert server.wait(lambda: server.completed_streams == 1 and server.open_streams == 0, WAIT_S)
    assert server.disconnects == 0


def test_the_reply_can_depend_on_the_prompt(server: FakeLlmServer) -> None:
    server.config = replace(FAST, reply=echo_reply)
    assert text_of(client(server), "what is the weather").startswith("You said: what is the weather. ")


def test_the_request_carries_model_stream_system_prompt_history_and_the_new_prompt(server: FakeLlmServer) -> None:
    text_of(client(server, api_key=KEY, system_prompt="Be brief.", max_tokens=64, temperature=0.5), "and now?", HISTORY)
    (body,) = server.requests
    assert body["model"] == "fake-model"
    assert body["stream"] is True
    assert body["max_tokens"] == 64 and body["temperature"] == 0.5
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "tell me a story"},
        {"role": "assistant", "content": "Once upon a time" + INTERRUPTED_MARKER},
        {"role": "user", "content": "what time is it"},
        {"role": "assistant", "content": CUT_BEFORE_ANY_WORD},
        {"role": "user", "content": "thanks"},
        {"role": "assistant", "content": "You're welcome."},
        {"role": "user", "content": "and now?"},
    ]
    roles = [message["role"] for message in body["messages"][1:]]
    assert roles == ["user", "assistant"] * 3 + ["user"]
    assert server.authorizations == [f"Bearer {KEY}"]


def test_no_authorization_header_and_no_optional_fields_when_not_configured(server: FakeLlmServer) -> None:
    text_of(client(server))
    (body,) = server.requests
    assert server.authorizations == [None]
    assert "max_tokens" not in body and "temperature" not in body
    assert body["messages"][0]["role"] == "system" and "markdown" in body["messages"][0]["content"]


def test_the_responder_is_a_responder_callable_whose_stream_closes_like_a_generator(server: FakeLlmServer) -> None:
    from device.runtime.work import Responder

    respond: Responder = client(server)
    assert callable(respond)
    stream = client(server)("hello", (), datetime(2026, 1, 1, 9, 41))
    with contextlib.closing(stream):
        first = next(stream)
    assert first == TextPiece(tokens_of(DEFAULT_REPLY)[0])
    assert list(stream) == []
    assert server.wait(lambda: server.disconnects == 1 and server.open_streams == 0, WAIT_S)


def test_lines_split_across_reads_with_crlf_and_multibyte_characters(server: FakeLlmServer) -> None:
    reply = "Grüße aus Köln. Ça va très bien, merci! 東京も晴れです。 Done."
    server.config = replace(FAST, reply=reply, line_end="\r\n", write_bytes=3)
    assert text_of(client(server)) == reply


def test_real_pacing_of_the_first_token_and_the_rest() -> None:
    reply = " ".join(f"word{i}" for i in range(11))  # 11 tokens: the first, then 10 at 50 per second
    with FakeLlmServer(FakeLlmConfig(first_token_delay_s=0.15, tokens_per_s=50.0, reply=reply)) as server:
        began = time.monotonic()
        stream = client(server).open("hello", ())
        next(stream)
        first_s = time.monotonic() - began
        rest = list(stream)
        total_s = time.monotonic() - began
    assert len(rest) == 10
    assert 0.15 <= first_s < 1.0
    assert 0.15 + 10 / 50 <= total_s < 2.0


# ---------------------------------------------------------------------------------------------- cancelling


@pytest.mark.parametrize("fault", ["hang", "hang_before_first_token"])
def test_close_from_another_thread_stops_a_blocked_read_at_once(server: FakeLlmServer, fault: Fault) -> None:
    server.config = replace(FAST, fault=fault, fault_after_tokens=3)
    stream = client(server, first_token_timeout_s=30.0, idle_timeout_s=30.0).open("hello", ())
    expected = 3 if fault == "hang" else 0
    received: list[str] = []
    outcome: list[BaseException | None] = []
    all_sent = threading.Event()

    def read() -> None:
        try:
            for piece in stream:
                received.append(piece.text)
                if len(received) == expected:
                    all_sent.set()
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    reader = threading.Thread(target=read)
    reader.start()
    if expected:
        assert all_sent.wait(WAIT_S)  # the reader is now waiting for a 4th token that never comes
    else:
        assert server.wait(lambda: server.open_streams == 1, WAIT_S)  # headers sent; nothing else will be
    began = time.monotonic()
    stream.close()
    reader.join(WAIT_S)
    assert not reader.is_alive()
    assert time.monotonic() - began < 0.5
    assert outcome == [None]  # a quiet end, not an error
    assert received == tokens_of(DEFAULT_REPLY)[:expected]
    assert server.wait(lambda: server.disconnects == 1 and server.open_streams == 0, WAIT_S)
    stream.close()  # idempotent
    assert list(stream) == []


def test_close_before_the_first_read_sends_nothing(server: FakeLlmServer) -> None:
    stream = client(server).open("hello", ())
    stream.close()
    assert list(stream) == []
    assert server.requests == []


# ---------------------------------------------------------------------------------------------- faults


def test_silence_before_the_first_token_is_a_first_token_timeout(server: FakeLlmServer) -> None:
    server.config = replace(FAST, fault="hang_before_first_token")
    message, received, took_s = failure(client(server, first_token_timeout_s=0.2, idle_timeout_s=5.0))
    assert "sent no word for 0.2 s after the request ([reply] first_token_timeout_s)" in message
    assert received == ""
    assert 0.2 <= took_s < 1.5


def test_silence_mid_reply_is_an_idle_timeout(server: FakeLlmServer) -> None:
    server.config = replace(FAST, fault="hang", fault_after_tokens=2)
    message, received, took_s = failure(client(server, first_token_timeout_s=5.0, idle_timeout_s=0.2))
    assert "sent no word for 0.2 s mid-reply ([reply] idle_timeout_s)" in message
    assert received == "".join(tokens_of(DEFAULT_REPLY)[:2])
    assert 0.2 <= took_s < 1.5
    assert server.wait(lambda: server.disconnects == 1, WAIT_S)  # the client hung up on the stuck stream


def test_a_connection_closed_mid_stream_is_a_reply_ended_mid_way(server: FakeLlmServer) -> None:
    server.config = replace(FAST, fault="disconnect", fault_after_tokens=4)
    message, received, _ = failure(client(server))
    assert message.startswith("the stream ended mid-reply: the server closed the connection")
    assert received == "".join(tokens_of(DEFAULT_REPLY)[:4])


def test_http_500_says_the_status_and_the_body(server: FakeLlmServer) -> None:
    server.config = replace(FAST, fault="http_500")
    message, _, _ = failure(client(server))
    assert "HTTP 500" in message and "The fake server had an error" in message
    assert server.base_url in message


def test_http_429_says_rate_limited_and_when_to_retry(server: FakeLlmServer) -> None:
    server.config = replace(FAST, fault="http_429")
    message, _, _ = failure(client(server))
    assert "rate-limiting" in message and "HTTP 429" in message and "retry after 1 s" in message


def test_a_malformed_chunk_is_named(server: FakeLlmServer) -> None:
    server.config = replace(FAST, fault="malformed", fault_after_tokens=1)
    message, received, _ = failure(client(server))
    assert "malformed stream chunk (not JSON)" in message and '"content": "oops"' in message
    assert received == tokens_of(DEFAULT_REPLY)[0]


def test_a_wrong_content_type_is_named(server: FakeLlmServer) -> None:
    server.config = replace(FAST, fault="wrong_content_type")
    message, _, _ = failure(client(server))
    assert "content type 'application/json" in message and "not text/event-stream" in message


def test_a_wrong_base_url_is_a_404_that_says_to_check_it(server: FakeLlmServer) -> None:
    responder = OpenAIResponder(OpenAIConfig(base_url=server.base_url.removesuffix("/v1"), model="fake-model"))
    message, _, _ = failure(responder)
    assert "HTTP 404" in message and "[reply] base_url" in message and "'fake-model'" in message


def test_a_closed_port_is_connection_refused_with_the_url() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago, and nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    message, _, took_s = failure(OpenAIResponder(OpenAIConfig(base_url=url, model="m")))
    assert "connection refused" in message and url in message and "[reply] base_url" in message
    assert took_s < 1.0


def test_https_to_a_plain_http_server_is_a_tls_error(server: FakeLlmServer) -> None:
    url = server.base_url.replace("http://", "https://")
    message, _, _ = failure(OpenAIResponder(OpenAIConfig(base_url=url, model="m")))
    assert "TLS handshake" in message and "http:// or https://" in message


def test_a_missing_key_and_a_wrong_key_say_where_the_key_comes_from(server: FakeLlmServer) -> None:
    server.config = replace(FAST, required_api_key="sk-the-right-one")
    message, _, _ = failure(client(server, api_key_env="MY_LLM_KEY"))
    assert "wants an API key" in message and "HTTP 401" in message and "MY_LLM_KEY" in message
    message, _, _ = failure(client(server, api_key=KEY, api_key_env="MY_LLM_KEY"))
    assert "rejected the API key" in message and "MY_LLM_KEY" in message
    assert KEY not in message
    assert text_of(client(server, api_key="sk-the-right-one")) == DEFAULT_REPLY


@pytest.mark.parametrize("fault", ["http_500", "http_429", "malformed", "wrong_content_type", "disconnect"])
def test_the_key_never_appears_in_repr_or_errors(server: FakeLlmServer, fault: Fault) -> None:
    server.config = replace(FAST, fault=fault, fault_after_tokens=1)
    responder = client(server, api_key=KEY)
    assert KEY not in repr(responder.config)
    message, _, _ = failure(responder)
    assert KEY not in message


def test_an_invalid_configuration_is_refused_up_front() -> None:
    with pytest.raises(ReplyBackendError, match="base_url must be an http:// or https:// URL"):
        OpenAIResponder(OpenAIConfig(base_url="127.0.0.1:8080/v1", model="m"))
    with pytest.raises(ReplyBackendError, match="idle_timeout_s must be > 0"):
        OpenAIResponder(OpenAIConfig(base_url="http://x/v1", model="m", idle_timeout_s=0))
    with pytest.raises(ReplyBackendError, match="API key contains spaces") as caught:
        OpenAIResponder(OpenAIConfig(base_url="http://x/v1", model="m", api_key="sk-abc\ndef"))
    assert "sk-abc" not in str(caught.value)


# ---------------------------------------------------------------------------------------------- the API key


def test_load_api_key_from_a_file_or_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    assert load_api_key(None, key_file) == KEY
    monkeypatch.setenv("SPINE_TEST_KEY", KEY)
    assert load_api_key("SPINE_TEST_KEY", None) == KEY
    assert load_api_key(None, None) is None


def test_load_api_key_says_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ReplyBackendError, match=re.escape(f"cannot read the API key file {missing}: No such file")):
        load_api_key(None, missing)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ReplyBackendError, match="is empty"):
        load_api_key(None, empty)
    monkeypatch.delenv("SPINE_TEST_KEY", raising=False)
    with pytest.raises(ReplyBackendError, match=r"environment variable SPINE_TEST_KEY .* is not set"):
        load_api_key("SPINE_TEST_KEY", None)


# ---------------------------------------------------------------------------------------------- pure helpers


def test_messages_for_without_a_system_prompt_starts_with_the_history() -> None:
    assert messages_for("", (Message("user", "hi"), Message("assistant", "Hello.")), "again") == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "again"},
    ]


def test_parse_chunk_reads_content_finish_and_server_errors() -> None:
    chunk = parse_chunk('{"choices": [{"delta": {"content": "Hi "}, "finish_reason": null}]}')
    assert (chunk.text, chunk.finished) == ("Hi ", False)
    assert parse_chunk('{"choices": [{"delta": {"role": "assistant"}}]}').text == ""
    assert parse_chunk('{"choices": [{"delta": {}, "finish_reason": "length"}]}').finished
    assert parse_chunk('{"choices": [], "usage": {"total_tokens": 3}}').text == ""
    with pytest.raises(ReplyBackendError, match="without choices"):
        parse_chunk('{"id": "x"}')
    with pytest.raises(ReplyBackendError, match="reported an error mid-reply: model overloaded"):
        parse_chunk('{"error": {"message": "model overloaded"}}')


SSE = (
    "\ufeff: a comment\r\ndata: one\r\n\r\nevent: message\ndata:two\n\nid: 7\rdata: thré€ 東\r\r:\ndata: [DONE]\n\n"
).encode()


@given(st.lists(st.integers(min_value=0, max_value=len(SSE)), max_size=12))
def test_sse_lines_are_the_same_however_the_bytes_are_split(cuts: list[int]) -> None:
    lines = SseLines()
    payloads: list[str] = []
    bounds = [0, *sorted(cuts), len(SSE)]
    for start, end in itertools.pairwise(bounds):
        payloads += lines.feed(SSE[start:end])
    payloads += lines.finish()
    assert payloads == ["one", "two", "thré€ 東", "[DONE]"]


def test_sse_lines_keep_a_last_line_without_its_line_break_for_the_end() -> None:
    lines = SseLines()
    assert lines.feed(b"data: a\n\ndata: [DO") == ["a"]
    assert lines.feed(b"NE]") == []
    assert lines.finish() == ["[DONE]"]


# ---------------------------------------------------------------------------------------------- the command line


def test_the_command_line_help_lists_the_faults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "--first-token-ms" in out and "hang_before_first_token" in out and "--port" in out
