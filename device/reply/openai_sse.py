"""Reading an OpenAI-style chat stream: bytes, however the reads cut them, into the payloads of server-sent
events (`SseLines`), and each payload into its text and whether the reply ends there (`parse_chunk`).

No I/O here: device/reply/openai_stream.py reads the socket and feeds the bytes in. A malformed chunk, an error
the server reports mid-stream or a line longer than `MAX_SSE_LINE_BYTES` is a `ReplyBackendError` quoting the
line (truncated, control bytes escaped). Control characters in the reply's text are dropped: nothing can speak
them, and a reply is logged and may be shown on a terminal.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from device.reply.openai_config import ReplyBackendError, printable

MAX_SSE_LINE_BYTES = 64 * 1024
"""The longest SSE line accepted, in bytes. One chunk of a chat stream is a few hundred bytes (a token and its
envelope, a little more with log-probabilities); a longer line is a server gone wrong, and buffering it whole
would let one line grow our memory without bound. Not a setting: no real server comes near it."""
_LINE_SHOWN_CHARS = 120
# C0 and C1 control characters other than tab, line feed and carriage return: no voice says them. And lone
# surrogates (JSON's "\ud800"), which are no text: the UTF-8 event log fails to write them.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


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
        # Line ends are looked for only in the new bytes (and a CR held back): searching the whole unfinished line
        # again at every read was quadratic, seconds of CPU for a long line trickled in small reads.
        for match in self._LINE_END.finditer(buffer, len(self._pending) - self._pending.endswith(b"\r")):
            if match.group() == b"\r" and match.end() == len(buffer):
                break  # this CR may be the first half of a CRLF split across reads: wait for the next byte
            _check_length(buffer[start : match.start()])
            payloads.extend(self._payload(buffer[start : match.start()]))
            start = match.end()
        self._pending = buffer[start:]
        # A line still without its end must not grow past the bound either; a CR held back is not part of it.
        _check_length(self._pending.removesuffix(b"\r"))
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


def _check_length(line: bytes) -> None:
    if len(line) > MAX_SSE_LINE_BYTES:
        raise ReplyBackendError(
            f"the reply server sent a stream line longer than {MAX_SSE_LINE_BYTES} bytes (a chunk is a few hundred): "
            f"{_shown(line[: 4 * _LINE_SHOWN_CHARS])}; is it an OpenAI-compatible server?"
        )


@dataclass(frozen=True)
class StreamChunk:
    """What one data line of the stream says: some text (may be empty), and whether the reply ends there."""

    text: str
    finished: bool


def parse_chunk(payload: str) -> StreamChunk:
    """One `chat.completion.chunk` data payload: its text (may be empty) and whether it ends the reply."""
    try:
        document = json.loads(payload)
    # ValueError: not JSON, or an integer past int()'s 4300 digits; RecursionError: nesting past Python's limit.
    except (ValueError, RecursionError):
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
    text = _CONTROL_CHARACTERS.sub("", content) if isinstance(content, str) else ""
    return StreamChunk(text, finished=choice.get("finish_reason") is not None)


def _error_text(error: object) -> str:
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return printable(_truncated(error["message"]))
    return printable(_truncated(json.dumps(error)))


def _shown(text: str | bytes) -> str:
    """A line from the server, quoted and truncated; repr escapes its control characters, as `printable` does."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return repr(_truncated(text))


def _truncated(text: str) -> str:
    return text[:_LINE_SHOWN_CHARS] + "…" if len(text) > _LINE_SHOWN_CHARS else text
