"""Reading an OpenAI-style chat stream: bytes, however the reads cut them, into the payloads of server-sent
events (`SseLines`), and each payload into its text and whether the reply ends there (`parse_chunk`).

No I/O here: device/reply/openai_stream.py reads the socket and feeds the bytes in. A malformed chunk, an error
the server reports mid-stream or a line without end is a `ReplyBackendError` quoting the line (truncated).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from device.reply.openai_config import ReplyBackendError

_MAX_LINE_BYTES = 1 << 20  # a server that never ends a line must not grow our memory without bound
_LINE_SHOWN_CHARS = 120


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
