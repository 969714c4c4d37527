"""The wire side of the fake OpenAI-compatible server (device/testing/fake_llm.py): the documents it sends and
how it writes them (SSE lines in configurable pieces, error bodies, a whole completion), kept apart so the
server module holds only the serving and the faults."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from aiohttp import web


class Chunks:
    """The `chat.completion.chunk` documents of one stream, all with the same id and creation time."""

    def __init__(self, model: str) -> None:
        self._head: dict[str, Any] = {
            "id": f"chatcmpl-fake-{time.monotonic_ns()}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

    def role(self) -> dict[str, Any]:
        return self._chunk({"role": "assistant", "content": ""}, None)

    def content(self, token: str) -> dict[str, Any]:
        return self._chunk({"content": token}, None)

    def empty(self, with_content: bool) -> dict[str, Any]:
        """A chunk without text: an empty delta, or one whose content is "" (both seen from real servers)."""
        return self._chunk({"content": ""} if with_content else {}, None)

    def stop(self) -> dict[str, Any]:
        return self._chunk({}, "stop")

    def _chunk(self, delta: dict[str, str], finish_reason: str | None) -> dict[str, Any]:
        return {**self._head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}


class Sender:
    """Writes SSE lines, each followed by a blank line, with the configured line ends and write sizes."""

    def __init__(self, response: web.StreamResponse, line_end: Literal["\n", "\r\n"], write_bytes: int) -> None:
        self._response, self._end, self._piece_bytes = response, line_end, write_bytes

    async def chunk(self, document: dict[str, Any]) -> None:
        await self.line(f"data: {json.dumps(document, ensure_ascii=False)}")

    async def line(self, text: str) -> None:
        data = f"{text}{self._end}{self._end}".encode()
        step = self._piece_bytes if self._piece_bytes > 0 else len(data)
        for start in range(0, len(data), step):
            await self._response.write(data[start : start + step])


async def sleep_until(loop: asyncio.AbstractEventLoop, at: float) -> None:
    # Against a schedule, not a sleep per token, so the pace does not drift with the time spent writing.
    await asyncio.sleep(max(0.0, at - loop.time()))


def drop(request: web.Request) -> None:
    """Close the connection mid-stream (what was written is flushed first), as a crashing server would."""
    if request.transport is not None:
        request.transport.close()


def error_response(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> web.Response:
    from aiohttp import web

    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return web.json_response(body, status=status, headers=headers)


def completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-fake-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }


def last_user_text(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""
