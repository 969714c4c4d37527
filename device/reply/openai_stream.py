"""One reply streamed from an OpenAI-compatible server over HTTP: connect, POST, check the answer at the edge,
read within the deadlines, and stop at once when closed from another thread.

The first `next()` connects, POSTs `{base_url}/chat/completions` with `stream: true`, checks the answer at the
edge (status, content type), then reads server-sent events (device/reply/openai_sse.py) and yields each
non-empty `choices[0].delta.content` as a `TextPiece`. The stream ends normally at `data: [DONE]` or at the first
chunk with a `finish_reason`.

Deadlines: `connect_timeout_s` for DNS, TCP and TLS; then the reply's own deadlines, on the turn's clock (the
first word, the first sentence, the gap between words, the whole reply: device/reply/openai_deadlines.py). Each
read waits at most until the nearest one, and each is checked after every read, so keep-alive comments and
chunks without text cannot hold a turn open. The clock is injectable (`clock`), for tests.

Bounds: one SSE line is at most `MAX_SSE_LINE_BYTES` (device/reply/openai_sse.py); the reply is at most
`MAX_REPLY_CHARS`: a longer one ends there, at a word boundary, as if the server had finished (what was said
stays said), and the connection is closed.

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
  | a deadline passed (keep-alives or not)     | which deadline ([reply] key), and its value                |
  | a line longer than MAX_SSE_LINE_BYTES      | the bound, the line's start                                |
  | connection closed before the end           | the stream ended mid-reply                                 |

The API key is never printed: it is scrubbed from echoed error bodies. Server text in a message (the body,
the reason phrase, headers) goes through `printable`, so control bytes show as escapes and never reach a
terminal raw.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from urllib.parse import urlsplit

from device.reply import RemoteStream
from device.reply.local import TextPiece
from device.reply.openai_config import OpenAIConfig, ReplyBackendError, printable
from device.reply.openai_deadlines import Deadline, ReplyDeadlines
from device.reply.openai_sse import SseLines, parse_chunk

_READ_BYTES = 16384
_BODY_SHOWN_CHARS = 200
_LEAST_WAIT_S = 0.001  # a socket timeout of 0 would mean "never block", not "the deadline is now"

MAX_REPLY_CHARS = 4000
"""The longest reply spoken, in characters: about four minutes of speech, far beyond the few sentences a voice
assistant's prompt asks for. A server that runs on (one 1 MB sentence once drove the process to 6.3 GB in
synthesis) is cut off here, at a word boundary, and the reply ends as if finished. Not a setting: a reply that
long is a fault to contain, not a preference."""


class OpenAIStream(RemoteStream):
    """One reply being streamed: an iterator of `TextPiece`s, read by one thread, closable from any thread."""

    def __init__(self, config: OpenAIConfig, body: bytes, clock: Callable[[], float] = time.monotonic) -> None:
        """`clock`: seconds on a monotonic clock; the reply's deadlines are kept on it."""
        self._config = config
        self._clock = clock
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
        self._deadlines: ReplyDeadlines | None = None
        self._waiting_for: Deadline | None = None  # the deadline the socket's timeout was set to
        self._chars_given = 0
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
            if not self._finished:
                self._check_deadlines()  # after every read: keep-alives and a trickle must not hold the turn
        return self._texts.popleft() if self._texts else None

    def _check_deadlines(self) -> None:
        assert self._deadlines is not None
        passed = self._deadlines.passed(self._clock())
        if passed is not None:
            raise ReplyBackendError(self._late(passed))

    def _wait_at_most_until_the_next_deadline(self) -> None:
        assert self._deadlines is not None
        self._waiting_for = self._deadlines.nearest()
        if self._sock is not None:
            self._sock.settimeout(max(_LEAST_WAIT_S, self._waiting_for.at_s - self._clock()))

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
                self._give(chunk.text)
            self._finished = self._finished or chunk.finished

    def _give(self, text: str) -> None:
        """Queue `text` for the reader, within `MAX_REPLY_CHARS` (past it, the reply ends at a word boundary)."""
        assert self._deadlines is not None
        room = MAX_REPLY_CHARS - self._chars_given
        if len(text) > room:
            text = cut_at_word_boundary(text, room, mid_word_ok=self._chars_given == 0)
            self._finished = True  # the rest is not read: close() hangs up on the server
        if text:
            self._texts.append(text)
            self._chars_given += len(text)
            self._deadlines.on_text(text, self._clock())

    def _start(self) -> None:
        config = self._config
        self._deadlines = ReplyDeadlines(
            self._clock(),
            config.first_token_timeout_s,
            config.first_sentence_timeout_s,
            config.idle_timeout_s,
            config.reply_timeout_s,
        )
        connection = self._connect()
        with self._lock:
            self._connection = connection
            self._sock = connection.sock
            if self._closed:
                return  # closed during connect: the caller sees it and ends quietly
        # From here every wait is for the server's answer, and the reply's deadlines bound it.
        self._wait_at_most_until_the_next_deadline()
        try:
            connection.request("POST", urlsplit(self._endpoint).path, body=self._body, headers=self._headers())
            self._response = connection.getresponse()
        except TimeoutError:
            raise ReplyBackendError(self._late(self._waiting_for)) from None
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
        said = f"HTTP {status} {printable(response.reason)}: {body}"
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
            wait = f"retry after {printable(retry_after[:20])} s" if retry_after else "wait and retry"
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
        shown = text[:_BODY_SHOWN_CHARS] + "…" if len(text) > _BODY_SHOWN_CHARS else text
        return printable(shown) or "(empty body)"

    def _read(self) -> bytes:
        """Whatever bytes have arrived (b"" at the end of the stream, or once closed)."""
        response = self._response
        if response is None:
            return b""
        self._wait_at_most_until_the_next_deadline()
        try:
            data = response.read1(_READ_BYTES)
        except TimeoutError:
            if self._is_closed():
                return b""
            raise ReplyBackendError(self._late(self._waiting_for)) from None
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

    def _late(self, deadline: Deadline | None) -> str:
        what = deadline.message if deadline is not None else "did not answer in time"
        return f"the reply server at {self._endpoint} {what}; it may be overloaded or stuck"

    def _ended_mid_reply(self, why: str) -> str:
        return f"the stream ended mid-reply: {why} before `data: [DONE]` or a finish_reason (from {self._endpoint})"


def _shutdown(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for TLS: SSLSocket.shutdown would first drop its SSL object, which the
    # reader thread may be using at this very moment. OSError: already shut down, so nothing is blocked on it.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def cut_at_word_boundary(text: str, room: int, mid_word_ok: bool) -> str:
    """The start of `text` that fits in `room` characters, ending at a word boundary: a word is never spoken in
    half, unless the reply is one word too long to fit (`mid_word_ok`), which is then cut where the room ends."""
    if room <= 0:
        return ""
    if text[room].isspace():
        return text[:room]
    head = text[:room]
    boundary = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
    if boundary >= 0:
        return head[: boundary + 1]
    return head if mid_word_ok else ""


def _why(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
