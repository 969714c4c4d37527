"""The reply's deadlines are on the turn's own clock: keep-alive comments, chunks without text and a trickle of
words without a sentence cannot keep Spine thinking or silently speaking (issue 11, case 1).

The deadline arithmetic is checked pure, with explicit times. Then the client against the fake server on
loopback: with an injected clock (the deadlines pass on the clock, however fast the wall runs), and with real
time and short deadlines under generous bounds. Last, the reply job under the thread runner: a passed deadline
is an `EngineFailed` of the reply, which the core answers with the short apology (the existing failure path).
"""

from __future__ import annotations

import itertools
import queue
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime

import pytest

from device.core.events import EngineFailed, Event, ReplyDelta
from device.reply.openai import OpenAIConfig, OpenAIResponder, ReplyBackendError
from device.reply.openai_deadlines import ReplyDeadlines
from device.runtime.job_threads import ThreadRunner
from device.runtime.work import Costs, reply_job
from device.testing.fake_llm import DEFAULT_REPLY, FakeLlmConfig, FakeLlmServer, Fault, tokens_of

FAST = FakeLlmConfig(first_token_delay_s=0.01, tokens_per_s=400.0, keepalive_interval_s=0.02)
WAIT_S = 5.0
RATE_HZ = 16000
NO_COSTS = Costs(0, 0.0, 0, 0.0, 0, 0)


def deadlines(**overrides: float) -> ReplyDeadlines:
    timeouts = {"first_token": 20.0, "first_sentence": 30.0, "idle": 10.0, "reply": 120.0, **overrides}
    return ReplyDeadlines(
        100.0, timeouts["first_token"], timeouts["first_sentence"], timeouts["idle"], timeouts["reply"]
    )


# ------------------------------------------------------------------------------------------ pure arithmetic


def test_before_any_word_the_first_token_deadline_counts_from_the_request_whatever_else_arrives() -> None:
    clock = deadlines()
    for now in range(100, 120, 2):  # a keep-alive or an empty chunk every 2 s: no text, or only white space
        clock.on_text("" if now % 4 else " ", float(now))
        assert clock.passed(float(now)) is None
    passed = clock.passed(120.0)
    assert passed is not None and "([reply] first_token_timeout_s)" in passed.message
    assert clock.left_s(119.5) == pytest.approx(0.5)


def test_after_a_word_the_idle_deadline_counts_from_the_last_word_not_the_last_byte() -> None:
    clock = deadlines()
    clock.on_text("Hello. ", 101.0)
    for now in range(102, 111):
        clock.on_text("", float(now))
    passed = clock.passed(111.0)
    assert passed is not None and "([reply] idle_timeout_s)" in passed.message and "10 s mid-reply" in passed.message
    clock.on_text("again ", 110.5)  # a word moves it
    assert clock.passed(111.0) is None


def test_words_that_never_end_a_sentence_meet_the_first_sentence_deadline() -> None:
    clock = deadlines()
    for now in range(101, 130):
        clock.on_text("word ", float(now))
    passed = clock.passed(130.0)
    assert passed is not None and "([reply] first_sentence_timeout_s)" in passed.message
    ended = deadlines()
    ended.on_text("One sentence.", 101.0)
    ended.on_text(" ", 102.0)  # the white space after the stop is what ends it, as the core cuts sentences
    for now in range(103, 131):
        ended.on_text("more ", float(now))
    assert ended.passed(131.0) is None


def test_a_steady_stream_of_sentences_meets_the_whole_reply_deadline() -> None:
    clock = deadlines()
    for now in range(101, 220):
        clock.on_text("Yes. ", float(now))
        assert clock.passed(float(now)) is None
    passed = clock.passed(220.0)
    assert passed is not None and "took longer than 120 s in all ([reply] reply_timeout_s)" in passed.message


# ------------------------------------------------------------------------------------------ on loopback


@pytest.fixture
def server() -> Iterator[FakeLlmServer]:
    with FakeLlmServer(FAST) as running:
        yield running


def client(
    server: FakeLlmServer,
    first_token_timeout_s: float = 20.0,
    first_sentence_timeout_s: float = 30.0,
    idle_timeout_s: float = 10.0,
    reply_timeout_s: float = 120.0,
) -> OpenAIResponder:
    config = OpenAIConfig(
        base_url=server.base_url,
        model="m",
        first_token_timeout_s=first_token_timeout_s,
        first_sentence_timeout_s=first_sentence_timeout_s,
        idle_timeout_s=idle_timeout_s,
        reply_timeout_s=reply_timeout_s,
    )
    return OpenAIResponder(config)


def failure(responder: OpenAIResponder) -> tuple[str, str, float]:
    received: list[str] = []
    began = time.monotonic()
    with pytest.raises(ReplyBackendError) as caught:
        for piece in responder.open("hello", ()):
            received.append(piece.text)
    return str(caught.value), "".join(received), time.monotonic() - began


class SteppingClock:
    """A monotonic clock that moves one second each time it is read: the turn's time, not the wall's."""

    def __init__(self) -> None:
        self._ticks = itertools.count(1000)

    def __call__(self) -> float:
        return float(next(self._ticks))


@pytest.mark.parametrize("fault", ["keepalive", "empty_deltas"])
def test_with_an_injected_clock_keep_alives_cannot_outlast_the_first_token_deadline(
    server: FakeLlmServer, fault: Fault
) -> None:
    server.config = replace(FAST, fault=fault, fault_after_tokens=0)
    config = OpenAIConfig(base_url=server.base_url, model="m", first_token_timeout_s=20.0)
    stream = OpenAIResponder(config, clock=SteppingClock()).open("hello", ())
    began = time.monotonic()
    with pytest.raises(ReplyBackendError, match=r"sent no word for 20 s after the request"):
        list(stream)
    assert time.monotonic() - began < 20.0 / 4  # the turn's clock decided, not the wall's
    assert server.wait(lambda: server.disconnects == 1 and server.open_streams == 0, WAIT_S)


@pytest.mark.parametrize("fault", ["keepalive", "empty_deltas"])
def test_keep_alives_before_the_first_word_end_at_the_first_token_deadline(server: FakeLlmServer, fault: Fault) -> None:
    server.config = replace(FAST, fault=fault, fault_after_tokens=0)
    message, received, took_s = failure(client(server, first_token_timeout_s=0.3))
    assert "sent no word for 0.3 s after the request ([reply] first_token_timeout_s)" in message
    assert received == ""
    assert 0.3 <= took_s < 2.0  # without the deadline on the turn's clock this ran forever
    assert server.wait(lambda: server.disconnects == 1 and server.open_streams == 0, WAIT_S)


@pytest.mark.parametrize("fault", ["keepalive", "empty_deltas"])
def test_keep_alives_mid_reply_end_at_the_idle_deadline(server: FakeLlmServer, fault: Fault) -> None:
    server.config = replace(FAST, fault=fault, fault_after_tokens=2)
    message, received, took_s = failure(client(server, idle_timeout_s=0.3))
    assert "sent no word for 0.3 s mid-reply ([reply] idle_timeout_s)" in message
    assert received == "".join(tokens_of(DEFAULT_REPLY)[:2])
    assert 0.3 <= took_s < 2.0
    assert server.wait(lambda: server.disconnects == 1, WAIT_S)


def test_words_without_a_sentence_end_meet_the_first_sentence_deadline(server: FakeLlmServer) -> None:
    server.config = replace(FAST, tokens_per_s=50.0, reply=" ".join(["on"] * 200))  # 4 s of words, no stop
    message, received, took_s = failure(client(server, first_token_timeout_s=0.2, first_sentence_timeout_s=0.4))
    assert "finished no sentence within 0.4 s of the request ([reply] first_sentence_timeout_s)" in message
    assert received.startswith("on on ")
    assert 0.4 <= took_s < 2.0


def test_a_reply_that_runs_on_meets_the_whole_reply_deadline(server: FakeLlmServer) -> None:
    server.config = replace(FAST, tokens_per_s=50.0, reply="Yes. " * 200)  # sentences for 4 s
    message, received, took_s = failure(client(server, first_sentence_timeout_s=0.3, reply_timeout_s=0.5))
    assert "took longer than 0.5 s in all ([reply] reply_timeout_s)" in message
    assert received.startswith("Yes. Yes. ")
    assert 0.5 <= took_s < 2.0


def test_a_passed_deadline_is_an_engine_failure_of_the_reply_job(server: FakeLlmServer) -> None:
    server.config = replace(FAST, fault="empty_deltas", fault_after_tokens=1)
    responder = client(server, idle_timeout_s=0.3)
    inbox: queue.SimpleQueue[Event] = queue.SimpleQueue()
    runner = ThreadRunner(inbox.put, RATE_HZ)
    try:
        runner.start(reply_job(1, "hello", (), responder, datetime(2026, 1, 1), NO_COSTS), 0)
        assert inbox.get(timeout=WAIT_S) == ReplyDelta(1, tokens_of(DEFAULT_REPLY)[0])
        failed = inbox.get(timeout=WAIT_S)
    finally:
        runner.stop()
    assert isinstance(failed, EngineFailed) and (failed.turn, failed.job) == (1, "reply")
    assert "[reply] idle_timeout_s" in failed.reason
    assert server.wait(lambda: server.disconnects == 1 and server.open_streams == 0, WAIT_S)
