"""One reply streamed from an OpenAI-compatible server over HTTP: connect, POST, check the answer at the edge,
read within the deadlines, and stop at once when closed from another thread.

The first `next()` connects, POSTs `{base_url}/chat/completions` with `stream: true`, checks the answer at the
edge (status, content type), then reads server-sent events (device/reply/openai_sse.py) and yields each
non-empty `choices[0].delta.content` as a `TextPiece`. The stream ends normally at `data: [DONE]` or at the first
chunk with a `finish_reason`.

Deadlines: `connect_timeout_s` for DNS, TCP and TLS; then the socket's timeout is `first_token_timeout_s` until
the first word and `idle_timeout_s` between words after it.

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

The API key is never printed: it is scrubbed from echoed error bodies.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
from collections import deque
from types import TracebackType
from urllib.parse import urlsplit

from device.reply import RemoteStream
from device.reply.local import TextPiece
from device.reply.openai_config import OpenAIConfig, ReplyBackendError
from device.reply.openai_sse import SseLines, parse_chunk

_READ_BYTES = 16384
_BODY_SHOWN_CHARS = 200


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


def _why(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
