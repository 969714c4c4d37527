"""A fake OpenAI-compatible chat server that speaks the real protocol, with scripted faults.

It serves `POST /v1/chat/completions` with `stream: true` as server-sent events, exactly as OpenAI, llama.cpp
or vLLM do: a first chunk with the role, one `chat.completion.chunk` per token (a word and its following
space), a last chunk with `finish_reason: "stop"`, then `data: [DONE]`. Tokens are paced like a model:
the first after `first_token_delay_s`, then `tokens_per_s`.

Faults, each what a real server or network does to a client sooner or later:

  | fault                    | what the server does                                                   |
  |--------------------------|------------------------------------------------------------------------|
  | none                     | streams the reply and ends it properly                                 |
  | hang                     | streams `fault_after_tokens` tokens, then neither sends nor closes     |
  | hang_before_first_token  | sends the headers and the role chunk, then neither sends nor closes    |
  | disconnect               | streams `fault_after_tokens` tokens, then closes the connection        |
  | malformed                | streams `fault_after_tokens` tokens, then a data line that is not JSON |
  | http_500                 | answers 500 with an OpenAI-style error body                            |
  | http_429                 | answers 429 with `Retry-After: 1`                                      |
  | wrong_content_type       | answers 200 with a whole (non-streamed) completion as application/json |
  | keepalive                | streams `fault_after_tokens` tokens, then only `: keepalive` comments  |
  |                          | every `keepalive_interval_s`, never closing                            |
  | empty_deltas             | the same with chunks without text (`{}` and `{"content": ""}` deltas)  |
  | error_mid_stream         | streams `fault_after_tokens` tokens, then a data line with an error    |
  |                          | whose message is `error_message`                                       |
  | http_500_raw             | answers 500 with `error_message` as a raw text/plain body              |

It records what clients did, for tests: every request body, the Authorization header of each, how many streams
the client closed before their end (`disconnects`), and how many are open now (`open_streams`). The server
runs on its own thread and event loop; `config` may be replaced between requests.

From the command line: `spine fake-llm --help` (device/testing/fake_llm_cli.py). A stand-in for tests and for
trying the remote reply path: the daemon never uses it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, get_args

from device.testing.fake_llm_protocol import (
    Chunks,
    Sender,
    completion,
    drop,
    error_response,
    last_user_text,
    sleep_until,
)
from device.testing.loop_server import LoopServer

# aiohttp is imported where it is used: `spine` builds its parser with this module's add_arguments, and
# importing aiohttp there would more than double the start-up time of every `spine` command.
if TYPE_CHECKING:
    from aiohttp import web

Fault = Literal[
    "none", "hang", "hang_before_first_token", "disconnect", "malformed", "http_500", "http_429", "wrong_content_type",
    "keepalive", "empty_deltas", "error_mid_stream", "http_500_raw",
]  # fmt: skip
FAULTS: tuple[Fault, ...] = get_args(Fault)

DEFAULT_REPLY = (
    "Sure. Here is a short answer from the fake model. It streams one word at a time, like a real one. "
    "Interrupt me whenever you like."
)


def echo_reply(prompt: str) -> str:
    """A reply that proves which prompt reached the server: "You said: <prompt>. " and two sentences."""
    return f"You said: {prompt.strip().rstrip('.?!')}. This is the fake model answering. It has nothing more to add."


@dataclass(frozen=True)
class FakeLlmConfig:
    """How the fake model answers. Read once per request, so a test may swap it between requests."""

    first_token_delay_s: float = 0.3
    """From the request to the first content token (the role chunk is sent at once, as real servers do)."""
    tokens_per_s: float = 30.0
    """Pace of the tokens after the first."""
    reply: str | Callable[[str], str] = DEFAULT_REPLY
    """The reply text, or a function of the last user message (e.g. `echo_reply`)."""
    fault: Fault = "none"
    """What goes wrong (see the module's table)."""
    fault_after_tokens: int = 3
    """For hang, disconnect, malformed, keepalive, empty_deltas and error_mid_stream: content tokens sent before
    the fault."""
    keepalive_interval_s: float = 2.0
    """For keepalive and empty_deltas: the time between two of them."""
    error_message: str = "The fake server had an error while processing your request."
    """The error's message for http_500, http_500_raw and error_mid_stream (may hold control bytes, as a
    broken server's may)."""
    required_api_key: str | None = field(default=None, repr=False)
    """When set, requests without `Authorization: Bearer <this>` get 401, as from a real API."""
    line_end: Literal["\n", "\r\n"] = "\n"
    """How SSE lines end; both are valid and both are seen in the wild."""
    write_bytes: int = 0
    """When > 0, every event is written in pieces of this many bytes, each its own HTTP chunk (as proxies
    re-chunk streams), so the client reads lines split anywhere, even inside "data:" or a UTF-8 character."""


def tokens_of(text: str) -> list[str]:
    """One token per word, with its following white space (as the local responder streams)."""
    return re.findall(r"\S+\s*", text)


class FakeLlmServer:
    """The fake server on 127.0.0.1 (an ephemeral port by default), on a background thread with its own loop."""

    def __init__(
        self, config: FakeLlmConfig | None = None, host: str = "127.0.0.1", port: int = 0, log_requests: bool = False
    ) -> None:
        self.config = config or FakeLlmConfig()
        self.base_url = ""
        self._changed = threading.Condition()  # guards the records below; notified on every change
        self._requests: list[dict[str, Any]] = []
        self._authorizations: list[str | None] = []
        self._disconnects = 0
        self._open_streams = 0
        self._completed_streams = 0
        self._server = LoopServer("fake-llm", host, port, log_requests)
        self._stopping: asyncio.Event | None = None

    # ------------------------------------------------------------------------------------------ lifecycle

    def start(self) -> str:
        """Serve; returns the base URL to give a client, e.g. "http://127.0.0.1:41234/v1"."""
        # handler_cancellation: a client closing its connection cancels the handler, which is how a hung
        # stream learns of it.
        self.base_url = self._server.start(self._app, handler_cancellation=True)
        return self.base_url

    def stop(self) -> None:
        """Stop serving; hung streams are released and open connections closed."""
        self._server.stop(self._release_hung)

    def __enter__(self) -> FakeLlmServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _app(self) -> web.Application:
        from aiohttp import web

        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        return app

    async def _release_hung(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    # ------------------------------------------------------------------------------------------ records

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request body received, in order (a copy)."""
        with self._changed:
            return list(self._requests)

    @property
    def authorizations(self) -> list[str | None]:
        """The Authorization header of each request (None when absent), in order."""
        with self._changed:
            return list(self._authorizations)

    @property
    def disconnects(self) -> int:
        """Streams the client closed before the server ended them."""
        with self._changed:
            return self._disconnects

    @property
    def open_streams(self) -> int:
        with self._changed:
            return self._open_streams

    @property
    def completed_streams(self) -> int:
        """Streams sent to their `data: [DONE]`."""
        with self._changed:
            return self._completed_streams

    def wait(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Block until `predicate()` holds (checked on every recorded change) or `timeout_s` passes."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout_s)

    def _record(self, body: dict[str, Any], authorization: str | None) -> None:
        with self._changed:
            self._requests.append(body)
            self._authorizations.append(authorization)
            self._changed.notify_all()

    def _count(self, opened: int = 0, disconnected: int = 0, completed: int = 0) -> None:
        with self._changed:
            self._open_streams += opened
            self._disconnects += disconnected
            self._completed_streams += completed
            self._changed.notify_all()

    # ------------------------------------------------------------------------------------------ handlers

    async def _models(self, request: web.Request) -> web.Response:
        from aiohttp import web

        return web.json_response({"object": "list", "data": [{"id": "fake-llm", "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        config = self.config  # once: a swap mid-request applies from the next request
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return error_response(400, "the request body is not JSON", "invalid_request_error")
        if not isinstance(body, dict):
            return error_response(400, "the request body is not a JSON object", "invalid_request_error")
        authorization = request.headers.get("Authorization")
        self._record(body, authorization)
        if config.required_api_key is not None and authorization != f"Bearer {config.required_api_key}":
            return error_response(401, "Incorrect API key provided.", "invalid_request_error")
        if config.fault == "http_500":
            return error_response(500, config.error_message, "server_error")
        if config.fault == "http_500_raw":
            return web.Response(status=500, body=config.error_message.encode(), content_type="text/plain")
        if config.fault == "http_429":
            return error_response(429, "Rate limit reached for requests.", "requests", headers={"Retry-After": "1"})
        model = str(body.get("model", "fake-llm"))
        text = config.reply if isinstance(config.reply, str) else config.reply(last_user_text(body))
        if config.fault == "wrong_content_type":
            return web.json_response(completion(model, text))
        return await self._stream(request, config, model, tokens_of(text))

    async def _stream(
        self, request: web.Request, config: FakeLlmConfig, model: str, tokens: list[str]
    ) -> web.StreamResponse:
        from aiohttp import web

        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        chunks = Chunks(model)
        send = Sender(response, config.line_end, config.write_bytes)
        self._count(opened=1)
        ended_by_server = False
        try:
            await response.prepare(request)
            await send.line(": fake-llm stream")  # a comment, as some servers send before or between chunks
            await send.chunk(chunks.role())
            if config.fault == "hang_before_first_token":
                await self._hang()
                return response
            faulty = config.fault in (
                "hang",
                "disconnect",
                "malformed",
                "keepalive",
                "empty_deltas",
                "error_mid_stream",
            )
            before_fault = tokens[: config.fault_after_tokens] if faulty else tokens
            loop = asyncio.get_running_loop()
            first_at = loop.time() + config.first_token_delay_s
            for index, token in enumerate(before_fault):
                await sleep_until(loop, first_at + index / config.tokens_per_s)
                await send.chunk(chunks.content(token))
            if config.fault == "hang":
                await self._hang()
                return response
            if config.fault in ("keepalive", "empty_deltas"):
                await self._keep_alive(send, chunks, config)
                return response
            if config.fault == "error_mid_stream":
                await send.chunk({"error": {"message": config.error_message, "type": "server_error"}})
            if config.fault == "disconnect":
                ended_by_server = True
                drop(request)
                return response
            if config.fault == "malformed":
                await send.line('data: {"choices": [{"delta": {"content": "oops"')
            for index, token in enumerate(tokens[len(before_fault) :], start=len(before_fault)):
                await sleep_until(loop, first_at + index / config.tokens_per_s)
                await send.chunk(chunks.content(token))
            await send.chunk(chunks.stop())
            await send.line("data: [DONE]")
            await response.write_eof()
            ended_by_server = True
            self._count(completed=1)
            return response
        except (ConnectionResetError, asyncio.CancelledError):
            # Writing to a closed connection, or (handler_cancellation) the client closed it while we waited.
            if not ended_by_server and not self._is_stopping():
                self._count(disconnected=1)
            raise
        finally:
            self._count(opened=-1)

    async def _hang(self) -> None:
        """Neither send nor close, until the client goes away (cancels us) or the server stops."""
        assert self._stopping is not None
        await self._stopping.wait()

    async def _keep_alive(self, send: Sender, chunks: Chunks, config: FakeLlmConfig) -> None:
        """Keep the connection busy without a word, until the client goes away or the server stops: what a
        proxy or a server waiting on a stuck model does."""
        for count in itertools.count():
            if self._is_stopping():
                return
            await asyncio.sleep(config.keepalive_interval_s)
            if config.fault == "keepalive":
                await send.line(": keepalive")
            else:
                await send.chunk(chunks.empty(with_content=count % 2 == 1))

    def _is_stopping(self) -> bool:
        return self._stopping is not None and self._stopping.is_set()
