"""A streaming client for OpenAI-compatible chat servers (OpenAI, llama.cpp, vLLM, Ollama, ...): stdlib only.

Why no SDK: the reply worker must be stoppable at any instant, even while blocked waiting for bytes, and the
simplest way to guarantee that is to own the socket. `http.client` gives us that socket; `ssl` does https.

Theory of operation
-------------------
`OpenAIResponder(config).open(prompt, history)` builds the request and returns an `OpenAIStream` that has done
no I/O yet, so whoever may cancel the turn can hold the stream before anything blocks. The client is five
modules; this one is the responder glue and re-exports the rest, so `device.reply.openai` is the one import:

  | module                          | what it does                                                           |
  |---------------------------------|------------------------------------------------------------------------|
  | device/reply/openai.py          | the request's messages (memory, interruption markers), the responder   |
  | device/reply/openai_config.py   | `OpenAIConfig`, `load_api_key`, `ReplyBackendError`                    |
  | device/reply/openai_stream.py   | `OpenAIStream`: HTTP, the deadlines, close from any thread, the errors |
  | device/reply/openai_sse.py      | `SseLines`, `parse_chunk`: the stream's bytes into text (no I/O)       |
  | device/reply/openai_deadlines.py| `ReplyDeadlines`: the reply's deadlines on the turn's clock (pure)     |

Every failure is one `ReplyBackendError` whose message says what happened and what to check (the table is in
device/reply/openai_stream.py). The API key is never printed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from device.core.memory import Message
from device.reply.openai_config import DEFAULT_SYSTEM_PROMPT, OpenAIConfig, ReplyBackendError, load_api_key
from device.reply.openai_sse import SseLines, StreamChunk, parse_chunk
from device.reply.openai_stream import OpenAIStream

__all__ = [
    "CUT_BEFORE_ANY_WORD",
    "DEFAULT_SYSTEM_PROMPT",
    "INTERRUPTED_MARKER",
    "OpenAIConfig",
    "OpenAIResponder",
    "OpenAIStream",
    "ReplyBackendError",
    "SseLines",
    "StreamChunk",
    "load_api_key",
    "messages_for",
    "parse_chunk",
]

INTERRUPTED_MARKER = "… [interrupted by the user]"
CUT_BEFORE_ANY_WORD = "[interrupted by the user before any word was spoken]"


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

    def __init__(self, config: OpenAIConfig, clock: Callable[[], float] = time.monotonic) -> None:
        """`clock`: the monotonic seconds each stream keeps its reply's deadlines on (tests inject one)."""
        problem = config.validate()
        if problem is not None:
            raise ReplyBackendError(problem)
        self.config = config
        self._clock = clock

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
        return OpenAIStream(self.config, json.dumps(body).encode("utf-8"), self._clock)

    def __call__(self, prompt: str, history: tuple[Message, ...], now: datetime) -> OpenAIStream:
        # `now` is part of the Responder signature for the local skills; the model is not told the time.
        return self.open(prompt, history)
