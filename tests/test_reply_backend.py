"""The reply backend chosen in `[reply]`: the config table, the responder made from it, and the remote backend
run the way the daemon runs it (ThreadRunner + reply_job) against the fake server over real HTTP on loopback.

No sleeps: tests wait on the runner's inbox and on what the server records, each with a timeout.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from device.config import Config, ReplyConfig
from device.core.events import EngineFailed, Event, JobCancelled, ReplyDelta, ReplyFinished
from device.errors import UserError
from device.reply import RemoteStream
from device.reply.backend import make_responder
from device.reply.local import TextPiece, respond
from device.reply.openai import DEFAULT_SYSTEM_PROMPT, OpenAIResponder
from device.runtime.job_threads import ThreadRunner
from device.runtime.jobs import VirtualRunner
from device.runtime.work import Costs, Responder, reply_job
from device.testing.fake_llm import DEFAULT_REPLY, FakeLlmConfig, FakeLlmServer, Fault, tokens_of
from device.tomlfile import loads_dataclass

RATE_HZ = 16000
KEY = "sk-test-never-print-5678"
FAST = FakeLlmConfig(first_token_delay_s=0.01, tokens_per_s=500.0)
WAIT_S = 5.0  # upper bound for a real thread or the server; tests pass as soon as the thing happens
NOW = datetime(2026, 11, 25, 9, 41)
# An hour per word: if the runner paced a remote stream on the wall clock, these tests would time out.
HOUR_PER_WORD = Costs(
    asr_fixed_samples=0, asr_rtf=0.0, tts_fixed_samples=0, tts_rtf=0.0, first_token_samples=3600 * RATE_HZ,
    token_samples=3600 * RATE_HZ,
)  # fmt: skip


def reply_config(text: str) -> ReplyConfig:
    return loads_dataclass(Config, text, "spine.toml").reply


# ------------------------------------------------------------------------------------------ the [reply] table


def test_an_empty_file_gives_the_local_backend_with_the_documented_defaults() -> None:
    config = reply_config("")
    assert config == ReplyConfig()
    assert (config.backend, config.base_url, config.model) == ("local", "http://127.0.0.1:8080/v1", "local-model")
    assert (config.api_key_env, config.api_key_file, config.system_prompt) == (None, None, None)


def test_every_field_of_the_reply_table_loads() -> None:
    config = reply_config(
        """
        [reply]
        backend = "openai"
        base_url = "https://llm.example.org/v1"
        model = "llama-3.1-8b"
        api_key_env = "MY_LLM_KEY"
        system_prompt = "Be brief."
        connect_timeout_s = 2
        first_token_timeout_s = 30.5
        first_sentence_timeout_s = 40
        idle_timeout_s = 4.0
        reply_timeout_s = 90
        max_tokens = 200
        temperature = 0.7
        token_interval_ms = 15
        """
    )
    assert config == ReplyConfig(
        backend="openai",
        base_url="https://llm.example.org/v1",
        model="llama-3.1-8b",
        api_key_env="MY_LLM_KEY",
        system_prompt="Be brief.",
        connect_timeout_s=2.0,
        first_token_timeout_s=30.5,
        first_sentence_timeout_s=40.0,
        idle_timeout_s=4.0,
        reply_timeout_s=90.0,
        max_tokens=200,
        temperature=0.7,
        token_interval_ms=15.0,
    )
    assert reply_config('[reply]\napi_key_file = "/run/credentials/spine/llm-key"\n').api_key_file == Path(
        "/run/credentials/spine/llm-key"
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('backend = "chat"', 'must be one of "local", "openai", "realtime"; got "chat"'),
        ('base_url = "127.0.0.1:8080/v1"', "`base_url` must be an http:// or https:// URL"),
        ('base_url = "ftp://example.org/v1"', "`base_url` must be an http:// or https:// URL"),
        ('base_url = "http://127.0.0.1:80a/v1"', "`base_url` has an invalid port"),
        ('model = " "', "`model` must not be empty"),
        ("connect_timeout_s = 0", "`connect_timeout_s` must be a number of seconds > 0, got 0"),
        ("idle_timeout_s = -1", "`idle_timeout_s` must be a number of seconds > 0"),
        ("first_token_timeout_s = inf", "`first_token_timeout_s` must be a number of seconds > 0, got inf"),
        ("first_token_timeout_s = nan", "`first_token_timeout_s` must be a number of seconds > 0, got nan"),
        ("first_sentence_timeout_s = 0", "`first_sentence_timeout_s` must be 0.1..3600"),
        ("first_token_timeout_s = 45", "`first_sentence_timeout_s` (30) must be at least `first_token_timeout_s` (45)"),
        ("reply_timeout_s = 25", "`reply_timeout_s` (25) must be at least `first_sentence_timeout_s` (30)"),
        ("max_tokens = 0", "`max_tokens` must be >= 1, got 0"),
        ("max_tokens = 1.5", "`reply.max_tokens` must be an integer, got float"),
        ("temperature = 2.5", "`temperature` must be 0..2, got 2.5"),
        ("token_interval_ms = -5", "`token_interval_ms` must be 0..1000"),
        ('api_key_env = "MY KEY"', "`api_key_env` must be the name of an environment variable"),
        ('api_key_env = "K"\napi_key_file = "/k"', "set only one of `api_key_env` and `api_key_file`"),
        ("api_key = 'x'", "unknown key `api_key` in [reply]"),
    ],
)
def test_a_bad_value_is_refused_with_the_line_and_what_to_write(line: str, expected: str) -> None:
    with pytest.raises(UserError) as caught:
        reply_config(f"# Spine\n[reply]\n{line}\n")
    assert expected in str(caught.value)
    assert str(caught.value).startswith("spine.toml:")


def test_a_key_pasted_into_api_key_env_is_not_echoed_in_the_error() -> None:
    with pytest.raises(UserError) as caught:
        reply_config(f'[reply]\napi_key_env = "{KEY}"\n')
    assert "api_key_env" in str(caught.value) and KEY not in str(caught.value)


# ------------------------------------------------------------------------------------------ make_responder


def test_the_local_backend_is_the_built_in_responder() -> None:
    assert make_responder(ReplyConfig()) is respond


def test_the_openai_backend_gets_every_setting_and_the_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_LLM_KEY", f"  {KEY}\n")
    reply = ReplyConfig(
        backend="openai",
        base_url="https://llm.example.org/v1",
        model="m1",
        api_key_env="MY_LLM_KEY",
        system_prompt="Be brief.",
        connect_timeout_s=1.0,
        first_token_timeout_s=2.0,
        first_sentence_timeout_s=2.5,
        idle_timeout_s=3.0,
        reply_timeout_s=60.0,
        max_tokens=50,
        temperature=0.2,
    )
    responder = make_responder(reply)
    assert isinstance(responder, OpenAIResponder)
    config = responder.config
    assert (config.base_url, config.model, config.api_key, config.api_key_env) == (
        "https://llm.example.org/v1",
        "m1",
        KEY,
        "MY_LLM_KEY",
    )
    assert (config.system_prompt, config.connect_timeout_s, config.first_token_timeout_s) == ("Be brief.", 1.0, 2.0)
    assert (config.idle_timeout_s, config.max_tokens, config.temperature) == (3.0, 50, 0.2)
    assert (config.first_sentence_timeout_s, config.reply_timeout_s) == (2.5, 60.0)
    assert KEY not in repr(config) and KEY not in repr(reply) and KEY not in repr(responder)


def test_the_key_comes_from_a_file_and_the_system_prompt_defaults_to_the_clients(tmp_path: Path) -> None:
    key_file = tmp_path / "llm-key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    responder = make_responder(ReplyConfig(backend="openai", api_key_file=key_file))
    assert isinstance(responder, OpenAIResponder)
    assert (responder.config.api_key, responder.config.system_prompt) == (KEY, DEFAULT_SYSTEM_PROMPT)
    silent = make_responder(ReplyConfig(backend="openai", system_prompt=""))
    assert isinstance(silent, OpenAIResponder)
    assert (silent.config.api_key, silent.config.system_prompt) == (None, "")  # no key, no system message


def test_a_key_that_cannot_be_loaded_stops_the_start_up_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MY_LLM_KEY", raising=False)
    with pytest.raises(UserError, match=r'^\[reply\] backend = "openai": the environment variable MY_LLM_KEY'):
        make_responder(ReplyConfig(backend="openai", api_key_env="MY_LLM_KEY"))
    with pytest.raises(UserError, match=r"cannot read the API key file .*missing-key"):
        make_responder(ReplyConfig(backend="openai", api_key_file=tmp_path / "missing-key"))
    (tmp_path / "empty-key").write_text("\n", encoding="utf-8")
    with pytest.raises(UserError, match="is empty"):
        make_responder(ReplyConfig(backend="openai", api_key_file=tmp_path / "empty-key"))


def test_a_key_with_spaces_inside_is_refused_without_printing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_LLM_KEY", f"{KEY} {KEY}")
    with pytest.raises(UserError) as caught:
        make_responder(ReplyConfig(backend="openai", api_key_env="MY_LLM_KEY"))
    assert "API key contains spaces" in str(caught.value) and KEY not in str(caught.value)


# ------------------------------------------------------------------------------------------ end to end


@pytest.fixture
def server() -> Iterator[FakeLlmServer]:
    with FakeLlmServer(FAST) as running:
        yield running


@pytest.fixture
def runner() -> Iterator[tuple[ThreadRunner, queue.SimpleQueue[Event]]]:
    inbox: queue.SimpleQueue[Event] = queue.SimpleQueue()
    running = ThreadRunner(inbox.put, RATE_HZ)
    try:
        yield running, inbox
    finally:
        running.stop()


def remote(server: FakeLlmServer, api_key_env: str | None = None) -> Responder:
    return make_responder(ReplyConfig(backend="openai", base_url=server.base_url, api_key_env=api_key_env))


def events_until(inbox: queue.SimpleQueue[Event], last: type) -> list[Event]:
    events = [inbox.get(timeout=WAIT_S)]
    while not isinstance(events[-1], last):
        events.append(inbox.get(timeout=WAIT_S))
    return events


def test_a_remote_reply_streams_as_deltas_then_finishes_and_is_not_paced_again(
    server: FakeLlmServer, runner: tuple[ThreadRunner, queue.SimpleQueue[Event]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server.config = replace(FAST, required_api_key=KEY)
    monkeypatch.setenv("MY_LLM_KEY", KEY)
    thread_runner, inbox = runner
    thread_runner.start(reply_job(1, "hello", (), remote(server, api_key_env="MY_LLM_KEY"), NOW, HOUR_PER_WORD), 0)
    events = events_until(inbox, ReplyFinished)
    assert events == [*(ReplyDelta(1, token) for token in tokens_of(DEFAULT_REPLY)), ReplyFinished(1)]
    assert server.authorizations == [f"Bearer {KEY}"]
    assert server.wait(lambda: server.completed_streams == 1 and server.open_streams == 0, WAIT_S)


def test_the_local_responder_is_still_paced_and_its_stream_is_not_remote() -> None:
    pieces = respond("hello", (), NOW)
    assert not isinstance(pieces, RemoteStream)
    costs = replace(HOUR_PER_WORD, first_token_samples=0, token_samples=320)
    outputs = list(reply_job(1, "hello", (), respond, NOW, costs).run())
    assert all(output.pace for output in outputs if isinstance(output.event, ReplyDelta))
    assert [output.cost_samples for output in outputs[:2]] == [0, 320]  # modelled costs stay as they were
    remote_outputs = list(reply_job(1, "hello", (), _scripted_remote, NOW, costs).run())
    assert [(output.cost_samples, output.pace) for output in remote_outputs] == [(0, False), (320, False), (0, False)]


class _Scripted(RemoteStream):
    def __init__(self, texts: list[str]) -> None:
        self._texts = iter(texts)
        self.closed = False

    def __next__(self) -> TextPiece:
        return TextPiece(next(self._texts))

    def close(self) -> None:
        self.closed = True


def _scripted_remote(prompt: str, history: object, now: datetime) -> _Scripted:
    return _Scripted(["Hi ", "there."])


def test_the_reply_job_closes_its_stream_when_it_ends_and_offers_it_as_the_abort_hook() -> None:
    stream = _Scripted(["Hi ", "there."])
    job = reply_job(1, "hello", (), lambda _prompt, _history, _now: stream, NOW, HOUR_PER_WORD)
    assert job.abort == stream.close
    outputs = job.run()
    assert next(outputs).event == ReplyDelta(1, "Hi ")
    assert not stream.closed
    outputs.close()  # what the runner does on a cancel: the stream it looped over is closed too
    assert stream.closed
    assert reply_job(1, "hello", (), respond, NOW, HOUR_PER_WORD).abort is None  # a generator stops by the flag


def test_a_responder_that_fails_to_open_fails_the_job_not_the_caller() -> None:
    def broken(prompt: str, history: object, now: datetime) -> Iterator[TextPiece]:
        raise ValueError("no stream today")

    runner = VirtualRunner(ack_samples=160)
    runner.start(reply_job(1, "hello", (), broken, NOW, HOUR_PER_WORD), 0)
    assert runner.pop_due(0) == [EngineFailed(1, "reply", "ValueError: no stream today")]


def test_a_server_error_becomes_engine_failed_with_the_clients_message(
    server: FakeLlmServer, runner: tuple[ThreadRunner, queue.SimpleQueue[Event]]
) -> None:
    server.config = replace(FAST, fault="http_500")
    thread_runner, inbox = runner
    thread_runner.start(reply_job(1, "hello", (), remote(server), NOW, HOUR_PER_WORD), 0)
    (failed,) = events_until(inbox, EngineFailed)
    assert isinstance(failed, EngineFailed) and (failed.turn, failed.job) == (1, "reply")
    assert "ReplyBackendError" in failed.reason and "HTTP 500" in failed.reason


@pytest.mark.parametrize(("fault", "words_first"), [("hang", 2), ("hang_before_first_token", 0)])
def test_a_cancel_while_the_server_hangs_closes_the_stream_and_acks_within_half_a_second(
    server: FakeLlmServer, runner: tuple[ThreadRunner, queue.SimpleQueue[Event]], fault: Fault, words_first: int
) -> None:
    server.config = replace(FAST, fault=fault, fault_after_tokens=words_first)
    thread_runner, inbox = runner
    thread_runner.start(reply_job(1, "hello", (), remote(server), NOW, HOUR_PER_WORD), 0)
    words = [inbox.get(timeout=WAIT_S) for _ in range(words_first)]
    assert words == [ReplyDelta(1, token) for token in tokens_of(DEFAULT_REPLY)[:words_first]]
    assert server.wait(lambda: server.open_streams == 1, WAIT_S)  # the worker is now blocked reading the socket
    began = time.monotonic()
    thread_runner.cancel_turn(1, 0)
    assert inbox.get(timeout=0.5) == JobCancelled(1, "reply")
    assert time.monotonic() - began < 0.5
    assert server.wait(lambda: server.disconnects == 1 and server.open_streams == 0, WAIT_S)
    assert inbox.empty() and thread_runner.leaks == 0
    # The same worker takes the next turn at once.
    server.config = FAST
    thread_runner.start(reply_job(2, "again", (), remote(server), NOW, HOUR_PER_WORD), 0)
    assert events_until(inbox, ReplyFinished)[-1] == ReplyFinished(2)
