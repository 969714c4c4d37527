"""What the OpenAI-compatible client needs to know: the server, the model, the key and the deadlines
(`OpenAIConfig`, built from `[reply]` by device/reply/backend.py), where the key comes from (`load_api_key`), and
the one error every part of the client raises (`ReplyBackendError`).

The API key is never printed: it is kept out of `repr(OpenAIConfig)`, and a key that is not a valid header value
is refused without quoting it. Text a server sent is shown only through `printable`, which escapes control bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from device.config import base_url_problem

DEFAULT_SYSTEM_PROMPT = (
    "You are a voice assistant. Everything you write is spoken aloud by a speech synthesiser, so answer in "
    "short, plain spoken sentences: usually one to three. Never use markdown, lists, headings, tables, code, "
    "emoji or URLs. Write numbers, units and symbols the way they are said. If the user interrupted you, do "
    "not repeat what they already heard; answer what they say now."
)


TIMEOUT_NAMES = (
    "connect_timeout_s",
    "first_token_timeout_s",
    "first_sentence_timeout_s",
    "idle_timeout_s",
    "reply_timeout_s",
)


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
    """Max time from the start of the request to the first word, on the turn's clock: keep-alive comments and
    chunks without text do not reset it (device/reply/openai_deadlines.py)."""
    first_sentence_timeout_s: float = 30.0
    """Max time from the start of the request to the first complete sentence."""
    idle_timeout_s: float = 10.0
    """Max time between two words once the first has arrived (keep-alives do not count as words)."""
    reply_timeout_s: float = 120.0
    """Max time for the whole reply, from the start of the request to its end."""
    max_tokens: int | None = None
    """Cap on the reply's length in tokens; None lets the server decide."""
    temperature: float | None = None
    """Sampling temperature; None lets the server decide."""

    def validate(self) -> str | None:
        problem = base_url_problem(self.base_url, "[reply] base_url")
        if problem is not None:
            return problem
        for name in TIMEOUT_NAMES:
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


def printable(text: str) -> str:
    """Text from a server made safe to show in a terminal or a log line: every character that is not printable
    (ANSI escape sequences, NUL, bells, line breaks, bidi overrides) is written as its escape, e.g. `\\x1b`, so
    a server can neither drive the terminal nor forge a log line; the rest reads as sent."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def _is_header_safe(value: str) -> bool:
    return bool(value) and all(33 <= ord(char) <= 126 for char in value)
