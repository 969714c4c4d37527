"""Settings of the reply backend (`[reply]`), and the one check of an OpenAI-compatible server's base URL.

Part of the settings' one home (device/config.py); a leaf like it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from device.tomlfile import example, within


@dataclass(frozen=True)
class ReplyConfig:
    """Where the replies come from: the built-in local responder, an OpenAI-compatible chat server, or a
    realtime speech model over WebRTC (docs/realtime.md).

    To try the remote path without a model: run `spine fake-llm --port 8080` and set `backend = "openai"`
    (the default `base_url` points at it). The API key is never written here: name the environment variable
    (`api_key_env`) or the file (`api_key_file`, e.g. a systemd credential) that holds it.
    """

    backend: Literal["local", "openai", "realtime"] = "local"
    """`local`: the built-in responder (time, date, timers, a story; no network). `openai`: stream the reply
    from the OpenAI-compatible server at `base_url` (OpenAI, llama.cpp's llama-server, vLLM, Ollama, ...).
    `realtime`: an OpenAI-Realtime-compatible speech model over WebRTC (`{base_url}/realtime/calls`, `model`
    e.g. "gpt-realtime"): it hears the turn's microphone and answers in its own voice, while the wake word, the
    end of the turn and every interruption stay on the device (`spine realtime-peer` is a local stand-in)."""
    base_url: str = "http://127.0.0.1:8080/v1"
    """The server's API root (http:// or https://, usually ending in /v1); Spine POSTs to
    `{base_url}/chat/completions`. Only with `backend = "openai"`."""
    model: str = "local-model"
    """The model name sent with each request (a server serving one model may ignore it)."""
    api_key_env: str | None = field(default=None, metadata=example("OPENAI_API_KEY"))
    """The environment variable holding the API key; unset: no key is sent, as a local server needs none. Set
    only one of `api_key_env` and `api_key_file`."""
    api_key_file: Path | None = field(default=None, metadata=example("/run/credentials/spine.service/llm-key"))
    """A file holding the API key (surrounding white space ignored), e.g. $CREDENTIALS_DIRECTORY/llm-key."""
    system_prompt: str | None = field(default=None, metadata=example("Answer in one short sentence."))
    """The first message of every request; unset: a built-in prompt for short, speakable answers with no
    markdown; "" sends none."""
    memory_turns: int = field(default=8, metadata=within(0, 1000))
    """How many of the last exchanges (a request and what the user heard of its answer) are remembered and sent
    with each request as its history; older ones are forgotten (0: none, each request stands alone). Without a
    bound an assistant that listens all day sent its whole day with every request (the soak: 90 messages after
    an hour of conversation)."""
    connect_timeout_s: float = 5.0
    """Max time to open the connection (DNS, TCP and TLS), in seconds; more than 0."""
    first_token_timeout_s: float = 20.0
    """Max time from the request to the first word, in seconds (a cold model loads meanwhile); more than 0. On
    the turn's clock: keep-alive comments and chunks without text do not reset it."""
    first_sentence_timeout_s: float = field(default=30.0, metadata=within(0.1, 3600.0))
    """Max time from the request to the first complete sentence, in seconds (a model that trickles words but
    never ends a sentence leaves nothing to say); at least `first_token_timeout_s`."""
    idle_timeout_s: float = 10.0
    """Max time between two words once the first has come, in seconds; more than 0. Keep-alive comments and
    chunks without text do not count as words."""
    reply_timeout_s: float = field(default=120.0, metadata=within(0.1, 3600.0))
    """Max time for the whole reply, from the request to its end, in seconds; at least
    `first_sentence_timeout_s`. When a deadline passes the stream is closed and Spine says it could not get an
    answer."""
    max_tokens: int | None = field(default=None, metadata=example(200))
    """Cap on a reply's length, in tokens, 1 or more; unset: the server decides."""
    temperature: float | None = field(default=None, metadata={**within(0.0, 2.0), **example(0.7)})
    """Sampling temperature; unset: the server decides."""
    voice: str | None = field(default=None, metadata=example("marin"))
    """Only with `backend = "realtime"`: the model's voice; unset: the server's default."""
    realtime_fallback: Literal["apology", "local"] = "apology"
    """Only with `backend = "realtime"`: when the model cannot answer a turn before it has said anything (no
    connection, a refused key, a call that dropped or stalled): `apology` says a short sorry, `local` answers
    with the built-in responder and the Piper voice instead. Either way the connection is retried with a
    growing back-off."""
    stall_timeout_s: float = field(default=8.0, metadata=within(0.5, 600.0))
    """Only with `backend = "realtime"`: while an answer is under way, the most time without any event from the
    server before the call counts as stalled (hung up, the turn ends, the call is made again), in seconds."""
    token_interval_ms: float = field(default=20.0, metadata=within(0.0, 1000.0))
    """The local responder streams one word per interval, in milliseconds, as an LLM would (a remote model keeps
    its own pace; in virtual time this interval models every backend's word rate)."""

    def validate(self) -> str | None:
        problem = base_url_problem(self.base_url, "`base_url`", " with a host (e.g. http://127.0.0.1:8080/v1)")
        if problem is not None:
            return problem
        if not self.model.strip():
            return "`model` must not be empty"
        if self.api_key_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env):
            # Never echo the value: a key pasted here by mistake must not reach a log.
            return "`api_key_env` must be the name of an environment variable (letters, digits, _), not the key"
        if self.api_key_env is not None and self.api_key_file is not None:
            return "set only one of `api_key_env` and `api_key_file`"
        for name in ("connect_timeout_s", "first_token_timeout_s", "idle_timeout_s"):
            value = getattr(self, name)
            if not 0 < value < math.inf:
                return f"`{name}` must be a number of seconds > 0, got {value}"
        if self.first_sentence_timeout_s < self.first_token_timeout_s:
            return (
                f"`first_sentence_timeout_s` ({self.first_sentence_timeout_s:g}) must be at least "
                f"`first_token_timeout_s` ({self.first_token_timeout_s:g}): raise it, or lower the other"
            )
        if self.reply_timeout_s < self.first_sentence_timeout_s:
            return (
                f"`reply_timeout_s` ({self.reply_timeout_s:g}) must be at least `first_sentence_timeout_s` "
                f"({self.first_sentence_timeout_s:g}): raise it, or lower the other"
            )
        if self.voice is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.voice):
            return f'`voice` must be a voice\'s name (letters, digits, . _ -), e.g. "marin", got {self.voice!r}'
        if self.max_tokens is not None and self.max_tokens < 1:
            return f"`max_tokens` must be >= 1, got {self.max_tokens}"
        return None


def base_url_problem(url: str, name: str, hint: str = "") -> str | None:
    """Why `url` cannot be an OpenAI-compatible server's base URL, or None: the one check, shared by the loader
    and the client (device/reply/openai.py). `name` is how the message calls the setting; `hint` (if any)
    follows the scheme requirement."""
    try:
        parts = urlsplit(url)  # raises too, on a host's unclosed bracket: "http://[::1"
    except ValueError as error:
        return f"{name} is not a URL ({error}): {url!r}"
    try:
        parts.port  # noqa: B018 - parsing the port is the check: it raises on "host:abc"
    except ValueError:
        return f"{name} has an invalid port: {url!r}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{name} must be an http:// or https:// URL{hint}, got {url!r}"
    return None
