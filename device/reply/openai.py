"""A streaming client for OpenAI-compatible chat servers (OpenAI, llama.cpp, vLLM, Ollama, ...): stdlib only.

Why no SDK: the reply worker must be stoppable at any instant, even while blocked waiting for bytes, and the
simplest way to guarantee that is to own the socket. `http.client` gives us that socket; `ssl` does https.

Theory of operation
-------------------
`OpenAIResponder(config).open(prompt, history)` builds the request and returns an `OpenAIStream` that has done
no I/O yet, so whoever may cancel the turn can hold the stream before anything blocks. The first `next()`
connects, POSTs `{base_url}/chat/completions` with `stream: true`, checks the answer at the edge (status,
content type), then reads server-sent events and yields each non-empty `choices[0].delta.content` as a
`TextPiece`. The stream ends normally at `data: [DONE]` or at the first chunk with a `finish_reason`.

One thread reads; any thread may `close()`. Closing shuts the socket down, which makes a read blocked in the
reader return at once; the reader sees the stream is closed and ends quietly (StopIteration). The descriptor
is released by whichever side finishes last, so it is never closed under a read still using it. A close
during connect takes effect when connect returns (within `connect_timeout_s`).

Every failure is one `ReplyBackendError` whose message says what happened and what to check:

  | what happened                              | the message says                                           |
  |--------------------------------------------|------------------------------------------------------------|
  | connection refused, DNS, TLS, timeout      | the URL; check the server is running and [reply] base_url   |
  | HTTP 401 / 403                             | the status, the body; check the API key's env variable     |
  | HTTP 404                                   | the status, the body; check base_url and the model name    |
  | HTTP 429                                   | rate-limited, Retry-After if sent                          |
  | any other status                           | the status and the first 200 characters of the body        |
  | content type not text/event-stream         | the content type that came                                 |
  | a data line not JSON, or without choices   | the line (truncated)                                       |
  | silence before the first word / mid-reply  | which timeout, and its value                               |
  | connection closed before the end           | the stream ended mid-reply                                 |

The API key is never printed: it is kept out of `repr(OpenAIConfig)` and scrubbed from echoed error bodies.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import ssl
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from device.config import base_url_problem
from device.core.memory import Message
from device.reply import RemoteStream
from device.reply.local import TextPiece

DEFAULT_SYSTEM_PROMPT = (
    "You are a voice assistant. Everything you write is spoken aloud by a speech synthesiser, so answer in "
    "short, plain spoken sentences: usually one to three. Never use markdown, lists, headings, tables, code, "
    "emoji or URLs. Write numbers, units and symbols the way they are said. If the user interrupted you, do "
    "not repeat what they already heard; answer what they say now."
)

INTERRUPTED_MARKER = "… [interrupted by the user]"
CUT_BEFORE_ANY_WORD = "[interrupted by the user before any word was spoken]"

_READ_BYTES = 16384
_MAX_LINE_BYTES = 1 << 20  # a server that never ends a line must not grow our memory without bound
_BODY_SHOWN_CHARS = 200
_LINE_SHOWN_CHARS = 120


class ReplyBackendError(Exception):
    """The reply server could not give a reply; the message says what happened and what to check."""


@dataclass(frozen=True)
class OpenAIConfig:
    """How to reach an OpenAI-compatible chat server and what to ask it."""

    base_url: str
    """The API root, e.g. "http://127.0.0.1:8080/v1"; the client POSTs to `{base_url}/chat/completions`."""
    model: str
    """The model name sent with each request (a local server serving one model may ignore it)."""
    api_key: str | None = field(default=None, repr=False)
    """Sent as `Authorization: Bearer ...` when set. Never printed: excluded from repr, scrubbed from errors."""
    api_key_env: str | None = "OPENAI_API_KEY"
    """The environment variable the key comes from: only named in errors, so a 401 says where to look."""
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    """The first message of every request; empty sends none."""
    connect_timeout_s: float = 5.0
    """Max time to open the connection (DNS, TCP and TLS)."""
    first_token_timeout_s: float = 20.0
    """Max silence (no bytes at all) from sending the request until the first word arrives."""
    idle_timeout_s: float = 10.0
    """Max silence between chunks once the first word has arrived."""
    max_tokens: int | None = None
    """Cap on the reply's length in tokens; None lets the server decide."""
    temperature: float | None = None
    """Sampling temperature; None lets the server decide."""

    def validate(self) -> str | None:
        problem = base_url_problem(self.base_url, "[reply] base_url")
        if problem is not None:
            return problem
        for name in ("connect_timeout_s", "first_token_timeout_s", "idle_timeout_s"):
            if not getattr(self, name) > 0:
                return f"[reply] {name} must be > 0, got {getattr(self, name)}"
        if self.api_key is not None and not _is_header_safe(self.api_key):
            # http.client would reject it with the key in its message; say it without the key.
            return "the API key contains spaces or control characters; check the key file or environment variable"
        return None


def load_api_key(env_name: str | None, file: Path | None) -> str | None:
    """The API key from `file` if given, else from the environment variable `env_name`; None if neither."""
    if file is not None:
        try:
            key = file.read_text(encoding="utf-8").strip()  # key files usually end with a newline
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            raise ReplyBackendError(
                f"cannot read the API key file {file}: {reason}; check [reply] api_key_file"
            ) from None
        if not key:
            raise ReplyBackendError(f"the API key file {file} is empty; put the key in it")
        return key
    if env_name:
        key = os.environ.get(env_name, "").strip()
        if not key:
            raise ReplyBackendError(
                f"the environment variable {env_name} (named by [reply] api_key_env) is not set; export it with "
                "the API key, or clear api_key_env if the server needs no key"
            )
        return key
    return None


def messages_for(system_prompt: str, history: Sequence[Message], prompt: str) -> list[dict[str, str]]:
    """The chat messages for one request: system, the conversation as remembered, then the new prompt.

    Memory keeps user and assistant alternating and holds only what the user heard, so it is sent as it is;
    an interrupted reply gets a marker so the model knows the user cut it there (and does not repeat it).
    """
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.extend({"role": message.role, "content": _content(message)} for message in history)
    messages.append({"role": "user", "content": prompt})
    return messages


def _content(message: Message) -> str:
    if message.role != "assistant" or not message.interrupted:
        return message.text
    heard = message.text.strip()
    return f"{heard}{INTERRUPTED_MARKER}" if heard else CUT_BEFORE_ANY_WORD


class OpenAIResponder:
    """Opens one reply stream per turn; also a `Responder` (prompt, history, now) -> pieces."""

    def __init__(self, config: OpenAIConfig) -> None:
        problem = config.validate()
        if problem is not None:
            raise ReplyBackendError(problem)
        self.config = config

    def open(self, prompt: str, history: Sequence[Message]) -> OpenAIStream:
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages_for(self.config.system_prompt, history, prompt),
            "stream": True,
        }
        if self.config.max_tokens is not None:
            body["max_tokens"] = self.config.max_tokens
        if self.config.temperature is not None:
            body["temperature"] = self.config.temperature
        return OpenAIStream(self.config, json.dumps(body).encode("utf-8"))

    def __call__(self, prompt: str, history: tuple[Message, ...], now: datetime) -> OpenAIStream:
        # `now` is part of the Responder signature for the local skills; the model is not told the time.
        return self.open(prompt, history)


class SseLines:
    """Turns a byte stream, however it was cut into reads, into the payloads of its SSE `data:` lines.

    OpenAI-style servers send one JSON document per `data:` line, so each data line is one payload and the
    blank lines between events carry nothing. Comments (`:` ...) and other fields (`event:`, `id:`) are
    skipped. A line ends in LF, CRLF or a lone CR, as SSE allows.
    """

    _LINE_END = re.compile(rb"\r\n|\r|\n")

    def __init__(self) -> None:
        self._pending = b""
        self._first_line = True

    def feed(self, data: bytes) -> list[str]:
        buffer = self._pending + data
        payloads: list[str] = []
        start = 0
        for match in self._LINE_END.finditer(buffer):
            if match.group() == b"\r" and match.end() == len(buffer):
                break  # this CR may be the first half of a CRLF split across reads: wait for the next byte
            payloads.extend(self._payload(buffer[start : match.start()]))
            start = match.end()
        self._pending = buffer[start:]
        if len(self._pending) > _MAX_LINE_BYTES:
            raise ReplyBackendError(
                f"the reply server sent a line longer than {_MAX_LINE_BYTES} bytes: {_shown(self._pending)}"
            )
        return payloads

    def finish(self) -> list[str]:
        """The payload of a last line that ended without a line break, at the end of the stream."""
        line, self._pending = self._pending, b""
        return self._payload(line)

    def _payload(self, raw: bytes) -> list[str]:
        line = raw.decode("utf-8", errors="replace")
        if self._first_line:
            self._first_line = False
            line = line.removeprefix("\ufeff")  # SSE allows a byte order mark before the first line
        name, _, value = line.partition(":")
        if name != "data":  # blank lines, comments (empty name) and the fields we have no use for
            return []
        value = value.removeprefix(" ")
        return [value] if value else []


@dataclass(frozen=True)
class StreamChunk:
    """What one data line of the stream says: some text (may be empty), and whether the reply ends there."""

    text: str
    finished: bool


def parse_chunk(payload: str) -> StreamChunk:
    """One `chat.completion.chunk` data payload: its text (may be empty) and whether it ends the reply."""
    try:
        document = json.loads(payload)
    except json.JSONDecodeError:
        raise ReplyBackendError(
            f"the reply server sent a malformed stream chunk (not JSON): {_shown(payload)}"
        ) from None
    if not isinstance(document, dict):
        raise ReplyBackendError(f"the reply server sent a malformed stream chunk (not an object): {_shown(payload)}")
    if "error" in document:  # OpenAI and others report a failure mid-stream as a data line with an error
        raise ReplyBackendError(f"the reply server reported an error mid-reply: {_error_text(document['error'])}")
    choices = document.get("choices")
    if not isinstance(choices, list):
        raise ReplyBackendError(f"the reply server sent a stream chunk without choices: {_shown(payload)}")
    if not choices:  # e.g. the usage-only chunk sent after the last one with stream_options.include_usage
        return StreamChunk("", finished=False)
    choice = choices[0]
    if not isinstance(choice, dict):
        raise ReplyBackendError(f"the reply server sent a malformed choice in a stream chunk: {_shown(payload)}")
    delta = choice.get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    text = content if isinstance(content, str) else ""
    return StreamChunk(text, finished=choice.get("finish_reason") is not None)


class OpenAIStream(RemoteStream):
    """One reply being streamed: an iterator of `TextPiece`s, read by one thread, closable from any thread."""

    def __init__(self, config: OpenAIConfig, body: bytes) -> None:
        self._config = config
        self._body = body
        self._endpoint = config.base_url.rstrip("/") + "/chat/completions"
        self._lock = threading.Lock()  # guards the three fields below between the reader and close()
        self._closed = False
        self._reading = False
        self._sock: socket.socket | None = None
        # Owned by the reader thread:
        self._connection: http.client.HTTPConnection | None = None
        self._response: http.client.HTTPResponse | None = None
        self._lines = SseLines()
        self._texts: deque[str] = deque()
        self._words_arrived = False
        self._finished = False

    def __next__(self) -> TextPiece:
        with self._lock:
            if self._closed:
                raise StopIteration
            self._reading = True
        try:
            text = self._next_text()
        except Exception:
            if self._is_closed():
                raise StopIteration from None  # the failure was our own close() cutting the socket
            self.close()
            raise
        finally:
            self._end_read()
        if text is None:
            self.close()
            raise StopIteration
        return TextPiece(text)

    def close(self) -> None:
        """Stop the stream now; safe from any thread, any number of times. The reader's next() then ends."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sock, reading = self._sock, self._reading
        if sock is not None:
            _shutdown(sock)  # wakes a read blocked in the reader thread
        if not reading:
            self._release()

    def __enter__(self) -> OpenAIStream:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ reader side

    def _is_closed(self) -> bool:
        with self._lock:
            return self._closed

    def _end_read(self) -> None:
        with self._lock:
            self._reading = False
            closed = self._closed
        if closed:  # close() came while we were reading and left the descriptor to us
            self._release()

    def _release(self) -> None:
        connection, self._connection, self._response = self._connection, None, None
        if connection is not None:
            connection.close()

    def _next_text(self) -> str | None:
        """The next non-empty text, or None at the normal end (or once closed)."""
        if self._connection is None and not self._finished:
            self._start()
        while not self._texts and not self._finished:
            data = self._read()
            if self._is_closed():
                return None
            if data:
                self._take(self._lines.feed(data), at_end=False)
            else:
                self._take(self._lines.finish(), at_end=True)
                if not self._finished:
                    raise ReplyBackendError(self._ended_mid_reply("the server closed the connection"))
        return self._texts.popleft() if self._texts else None

    def _take(self, payloads: list[str], at_end: bool) -> None:
        for payload in payloads:
            if self._finished:
                return  # anything after the end is not part of the reply
            if payload.strip() == "[DONE]":
                self._finished = True
                return
            try:
                chunk = parse_chunk(payload)
            except ReplyBackendError:
                if at_end:
                    return  # a last line without its line break was cut off with the connection
                raise
            if chunk.text:
                self._texts.append(chunk.text)
                self._on_word()
            self._finished = chunk.finished

    def _on_word(self) -> None:
        if self._words_arrived:
            return
        self._words_arrived = True
        if self._sock is not None:
            # The model is producing: from now on a gap longer than the idle timeout means it is stuck.
            self._sock.settimeout(self._config.idle_timeout_s)

    def _start(self) -> None:
        connection = self._connect()
        with self._lock:
            self._connection = connection
            self._sock = connection.sock
            if self._closed:
                return  # closed during connect: the caller sees it and ends quietly
        if self._sock is not None:
            # From here every wait is for the server's answer; it must speak within the first-token timeout.
            self._sock.settimeout(self._config.first_token_timeout_s)
        try:
            connection.request("POST", urlsplit(self._endpoint).path, body=self._body, headers=self._headers())
            self._response = connection.getresponse()
        except TimeoutError:
            raise ReplyBackendError(self._silence()) from None
        except (OSError, http.client.HTTPException) as error:
            raise ReplyBackendError(
                f"lost the connection to the reply server at {self._endpoint}: {_why(error)}"
            ) from None
        self._check_response(self._response)

    def _connect(self) -> http.client.HTTPConnection:
        parts = urlsplit(self._config.base_url)
        host, timeout_s = parts.hostname or "", self._config.connect_timeout_s
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                host, parts.port, timeout=timeout_s, context=ssl.create_default_context()
            )
        else:
            connection = http.client.HTTPConnection(host, parts.port, timeout=timeout_s)
        try:
            connection.connect()
        except OSError as error:
            connection.close()  # a failed TLS handshake leaves the plain socket open
            raise ReplyBackendError(self._connect_problem(error)) from None
        return connection

    def _connect_problem(self, error: OSError) -> str:
        check = "check the server is running and [reply] base_url"
        if isinstance(error, ConnectionRefusedError):
            return f"cannot connect to the reply server at {self._endpoint}: connection refused; {check}"
        if isinstance(error, socket.gaierror):
            return f"cannot resolve the host of [reply] base_url {self._config.base_url}: {_why(error)}; check it"
        if isinstance(error, TimeoutError):
            timeout_s = self._config.connect_timeout_s
            return f"connecting to the reply server at {self._endpoint} timed out after {timeout_s:g} s; {check}"
        if isinstance(error, ssl.SSLError):
            return (
                f"the TLS handshake with {self._endpoint} failed: {_why(error)}; check [reply] base_url "
                "(http:// or https://) and the server's certificate"
            )
        return f"cannot connect to the reply server at {self._endpoint}: {_why(error)}; {check}"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self._config.api_key:
            headers["Authorization"] = f"Bearer {self._config.api_key}"
        return headers

    def _check_response(self, response: http.client.HTTPResponse) -> None:
        if response.status != 200:
            raise ReplyBackendError(self._status_problem(response))
        content_type = response.getheader("Content-Type") or "(none)"
        if content_type.split(";")[0].strip().lower() != "text/event-stream":
            raise ReplyBackendError(
                f"the reply server at {self._endpoint} answered with content type {content_type!r}, not "
                f"text/event-stream (body: {self._body_excerpt(response)}); is it an OpenAI-compatible server "
                "that supports streaming?"
            )

    def _status_problem(self, response: http.client.HTTPResponse) -> str:
        status, body = response.status, self._body_excerpt(response)
        said = f"HTTP {status} {response.reason}: {body}"
        env = self._config.api_key_env
        if status in (401, 403) and not self._config.api_key:
            where = f"set the environment variable {env}" if env else "set [reply] api_key_env or api_key_file"
            return f"the reply server at {self._endpoint} wants an API key ({said}); {where}"
        if status in (401, 403):
            where = f"the environment variable {env}" if env else "[reply] api_key_file"
            return f"the reply server at {self._endpoint} rejected the API key ({said}); check the key in {where}"
        if status == 404:
            return (
                f"the reply server has no {self._endpoint} or no model {self._config.model!r} ({said}); check "
                "[reply] base_url (it usually ends in /v1) and [reply] model"
            )
        if status == 429:
            retry_after = response.getheader("Retry-After")
            wait = f"retry after {retry_after} s" if retry_after else "wait and retry"
            return f"the reply server at {self._endpoint} is rate-limiting requests ({said}); {wait}"
        return f"the reply server at {self._endpoint} failed the request ({said})"

    def _body_excerpt(self, response: http.client.HTTPResponse) -> str:
        try:
            raw = response.read(4 * _BODY_SHOWN_CHARS)
        except (OSError, http.client.HTTPException):
            raw = b""
        text = " ".join(raw.decode("utf-8", errors="replace").split())
        if self._config.api_key:
            text = text.replace(self._config.api_key, "***")  # a server may echo the key back
        return (text[:_BODY_SHOWN_CHARS] + "…" if len(text) > _BODY_SHOWN_CHARS else text) or "(empty body)"

    def _read(self) -> bytes:
        """Whatever bytes have arrived (b"" at the end of the stream, or once closed)."""
        response = self._response
        if response is None:
            return b""
        try:
            data = response.read1(_READ_BYTES)
        except TimeoutError:
            if self._is_closed():
                return b""
            raise ReplyBackendError(self._silence()) from None
        except (http.client.IncompleteRead, ConnectionResetError):
            # The server went away inside the chunked body (or close() pulled the socket from under us).
            if self._is_closed():
                return b""
            raise ReplyBackendError(self._ended_mid_reply("the server closed the connection")) from None
        except (OSError, ValueError, http.client.HTTPException) as error:
            # ValueError and SSL errors are also what a read does when close() shut the socket down mid-read.
            if self._is_closed():
                return b""
            raise ReplyBackendError(self._ended_mid_reply(_why(error))) from None
        return data

    def _silence(self) -> str:
        if self._words_arrived:
            when, timeout_s, name = "mid-reply", self._config.idle_timeout_s, "idle_timeout_s"
        else:
            when, timeout_s, name = "before the first word", self._config.first_token_timeout_s, "first_token_timeout_s"
        return (
            f"the reply server at {self._endpoint} sent nothing for {timeout_s:g} s {when} ([reply] {name}); "
            "it may be overloaded or stuck"
        )

    def _ended_mid_reply(self, why: str) -> str:
        return f"the stream ended mid-reply: {why} before `data: [DONE]` or a finish_reason (from {self._endpoint})"


def _shutdown(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for TLS: SSLSocket.shutdown would first drop its SSL object, which the
    # reader thread may be using at this very moment. OSError: already shut down, so nothing is blocked on it.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _is_header_safe(value: str) -> bool:
    return bool(value) and all(33 <= ord(char) <= 126 for char in value)


def _why(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _error_text(error: object) -> str:
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return _truncated(error["message"])
    return _truncated(json.dumps(error))


def _shown(text: str | bytes) -> str:
    """A line from the server, quoted (so blanks and control characters show) and truncated."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return repr(_truncated(text))


def _truncated(text: str) -> str:
    return text[:_LINE_SHOWN_CHARS] + "…" if len(text) > _LINE_SHOWN_CHARS else text
