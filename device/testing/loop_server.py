"""An aiohttp application served on its own event loop and thread: the lifecycle the test servers share.

The fake model (device/testing/fake_llm.py) and the realtime test peer (device/testing/realtime_peer.py) are
driven from synchronous test code, so each serves from a loop of its own on a daemon thread. `LoopServer` owns
that loop, the thread and the aiohttp runner, and starts and stops them in order; the server it belongs to says
what to serve and what to release before the runner is cleaned up.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

# aiohttp is imported where it is used: `spine` builds its parser with the CLI modules, which import the servers,
# and importing aiohttp there would slow every `spine` command.
if TYPE_CHECKING:
    from aiohttp import web

T = TypeVar("T")

LOOP_WAIT_S = 10.0
"""How long a start, a stop or a call on the loop may take before the caller gives up (TimeoutError)."""


class LoopServer:
    """Serves one aiohttp application at a time on `host`:`port` (0: an ephemeral port), on thread `thread_name`."""

    def __init__(self, thread_name: str, host: str, port: int, log_requests: bool) -> None:
        self.base_url = ""
        self._thread_name, self._host, self._port, self._log_requests = thread_name, host, port, log_requests
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def serving(self) -> bool:
        return self._loop is not None

    def start(self, make_app: Callable[[], web.Application], handler_cancellation: bool = False) -> str:
        """Serve the application `make_app()` builds (called on the server's loop, so it may make loop objects);
        returns the base URL to give a client, e.g. "http://127.0.0.1:41234/v1". Serving already: the same URL.
        `handler_cancellation`: a client closing its connection cancels its handler (aiohttp's option)."""
        if self._loop is not None:
            return self.base_url
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=self._thread_name, daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            port = self.run(lambda: self._serve(make_app, handler_cancellation))
        except BaseException:
            self._end_loop()
            raise
        self.base_url = f"http://{self._host}:{port}/v1"
        return self.base_url

    def stop(self, release: Callable[[], Awaitable[None]]) -> None:
        """Stop serving: await `release()` on the loop (to end what would hold the runner's cleanup up), clean the
        runner up, then end the loop and its thread. Not serving: nothing."""
        if self._loop is None:
            return
        try:
            self.run(lambda: self._shutdown(release))
        finally:
            self._end_loop()

    def run(self, make_coroutine: Callable[[], Awaitable[T]]) -> T:
        """Run the coroutine `make_coroutine()` makes on the server's loop and return its result (serving only)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the server is not serving: start it first")

        async def on_loop() -> T:
            return await make_coroutine()

        return asyncio.run_coroutine_threadsafe(on_loop(), loop).result(timeout=LOOP_WAIT_S)

    def _end_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=LOOP_WAIT_S)
        loop.close()

    async def _serve(self, make_app: Callable[[], web.Application], handler_cancellation: bool) -> int:
        from aiohttp import web
        from aiohttp.log import access_logger

        runner = web.AppRunner(
            make_app(),
            handler_cancellation=handler_cancellation,
            shutdown_timeout=0.5,  # short: each server releases its hung handlers itself before the cleanup
            access_log=access_logger if self._log_requests else None,
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner = runner
        port: int = runner.addresses[0][1]
        return port

    async def _shutdown(self, release: Callable[[], Awaitable[None]]) -> None:
        await release()
        if self._runner is not None:
            await self._runner.cleanup()
