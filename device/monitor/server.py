"""The monitor: an aiohttp server on its own asyncio thread, serving the page, WebRTC sessions and `/metrics`.

It reads what the FSM thread publishes (`MonitorFeed`: the loop observer and the audio tap) and posts remote
controls into the inbox as events; it never decides and never holds a lock the FSM or audio threads take.

Access (device/monitor/token.py): every route but `/login` needs a token, in `Authorization: Bearer ...` or
the cookie `/login` sets; without one the answer is 401. `/metrics` is open to loopback clients by default
(`[monitor] metrics_access`). aiohttp's access log is off: nothing the server writes can carry a token.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from device.core.events import Event
from device.errors import UserError
from device.monitor import messages
from device.monitor.chart_svg import state_diagram_svg
from device.monitor.feed import MonitorFeed, StepRecord
from device.monitor.metrics import AudioHealth, SpineCollector, exposition, make_registry
from device.monitor.peers import OfferRefused, Session, Sessions
from device.monitor.token import Access, Tokens
from device.monitor.tracks import AudioFanout
from device.runtime.logparts import parts_of, steps_of_later_part
from device.settings.monitor import MonitorConfig
from device.thread_name import name_this_thread

COOKIE = "spine_monitor_token"
ACCESS = web.RequestKey("access", Access)
PUMP_INTERVAL_S = 0.01  # a record waits 5 ms on average before it goes out
HISTORY_STEPS = 300  # steps a browser that connects late is sent at once, to fill its timeline
STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Monitor:
    def __init__(
        self,
        config: MonitorConfig,
        tokens: Tokens,
        feed: MonitorFeed,
        post_event: Callable[[Event], None],
        log_path: Path,
        audio_health: Callable[[], AudioHealth] = AudioHealth,
    ) -> None:
        self.config = config
        self.feed = feed
        self._tokens = tokens
        self._log_path = log_path
        self._fanout = AudioFanout(feed)
        self.sessions = Sessions(
            max_sessions=config.max_sessions,
            max_offer_bytes=config.max_offer_bytes,
            max_messages_per_s=config.max_messages_per_s,
            session_buffer_bytes=config.session_buffer_bytes,
            allow_control=config.allow_control,
            post_event=post_event,
            hello=self._hello,
            fanout=self._fanout,
            rate_hz=feed.rate_hz,
        )
        self._registry = make_registry(SpineCollector(feed, audio_health, lambda: len(self.sessions.live)))
        self._history: deque[dict[str, Any]] = deque(maxlen=HISTORY_STEPS)
        self._diagram = state_diagram_svg()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # ---- life cycle (called from the starting thread)
    def start(self) -> int:
        """Serve on a thread of its own; returns the port once it listens (a `UserError` if it cannot)."""
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, args=(ready, failure), name="spine-monitor", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise UserError(
                f"the monitor cannot listen on {self.config.bind_address}:{self.config.port}: {failure[0]}; "
                "set [monitor] port or bind_address"
            )
        return self.port

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)

    def connect_times_s(self) -> list[float]:
        return list(self.sessions.connect_times_s)

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        name_this_thread(threading.current_thread().name)
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._listen())
        except OSError as error:
            failure.append(error)
            ready.set()
            return
        self._loop = loop
        ready.set()
        loop.call_soon(self._pump)
        loop.run_forever()
        loop.close()

    async def _listen(self) -> None:
        app = web.Application(middlewares=[self._auth], client_max_size=self.config.max_offer_bytes + 1)
        app.router.add_get("/login", self._login_page)
        app.router.add_post("/login", self._login)
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/diagram.svg", self._diagram_svg)
        app.router.add_post("/offer", self._offer)
        app.router.add_get("/log", self._log)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.bind_address, self.config.port)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        await self.sessions.close_all()
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- the FSM thread's records
    def _pump(self) -> None:
        """Every `PUMP_INTERVAL_S`, on the monitor's thread: the records waiting go out to every browser.

        Polled, not woken by the FSM thread: a cross-thread wake-up is a socket write, during which the FSM thread
        gives up the GIL and may wait a whole switch interval to get it back (measured: 0.66 s of the FSM
        thread's time in a 25 s scene with wake-ups, 0.13 s polled; transition -> browser p95 133 ms, 20 ms)."""
        assert self._loop is not None
        self._loop.call_later(PUMP_INTERVAL_S, self._pump)
        rate = self.feed.rate_hz
        for record in self.feed.take():
            message = messages.record_message(record, rate)
            if isinstance(record, StepRecord):
                self._history.append(message)
            self.sessions.broadcast(messages.dumps(message))
        self._fanout.pump()

    def _hello(self, session: Session) -> dict[str, Any]:
        return {
            "kind": "hello",
            "state": self.feed.stats.state,
            "access": session.access.value,
            "control": session.access is Access.ADMIN and self.config.allow_control,
            "tracks": [track.source for track in session.tracks],
            "history": list(self._history),
        }

    # ---- access
    def access_of(self, request: web.Request) -> Access:
        header = request.headers.get("Authorization", "")
        presented = header[len("Bearer ") :] if header.startswith("Bearer ") else request.cookies.get(COOKIE)
        return self._tokens.access_of(presented)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/login":
            return await handler(request)
        if request.path == "/metrics" and self.config.metrics_access == "loopback" and _is_loopback(request.remote):
            return await handler(request)
        access = self.access_of(request)
        if access is Access.NONE:
            return web.Response(
                status=401, text="401: a monitor token is needed; open the URL `spine monitor-url` prints\n"
            )
        request[ACCESS] = access
        return await handler(request)

    # ---- routes
    async def _login_page(self, _request: web.Request) -> web.StreamResponse:
        return _static_file("login.html")

    async def _login(self, request: web.Request) -> web.StreamResponse:
        access = self.access_of(request)
        if access is Access.NONE:
            return web.Response(status=401, text="401: that token is not this monitor's\n")
        header = request.headers.get("Authorization", "")
        response = web.Response(status=204)
        response.set_cookie(COOKIE, header[len("Bearer ") :], httponly=True, samesite="Strict", path="/")
        return response

    async def _page(self, _request: web.Request) -> web.StreamResponse:
        return _static_file("index.html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        return _static_file(request.match_info["name"])

    async def _diagram_svg(self, _request: web.Request) -> web.StreamResponse:
        return web.Response(text=self._diagram, content_type="image/svg+xml")

    async def _offer(self, request: web.Request) -> web.StreamResponse:
        if (request.content_length or 0) > self.sessions.max_offer_bytes:
            return _refusal(self.sessions.too_large())
        body = await request.content.read(self.sessions.max_offer_bytes + 1)
        try:
            answer = await self.sessions.open(self.sessions.parse_offer(body), request[ACCESS])
        except OfferRefused as refused:
            return _refusal(refused)
        return web.json_response({"type": answer.type, "sdp": answer.sdp})

    async def _log(self, request: web.Request) -> web.StreamResponse:
        """The run's log as one file: its parts joined (device/runtime/logparts.py), one part in memory at a time,
        the last cut at its last whole step."""
        parts = parts_of(self._log_path)
        if not parts:
            return web.Response(status=404, text=f"no event log at {self._log_path} (removed past [log] keep_mb?)\n")
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/x-ndjson",
                "Content-Disposition": 'attachment; filename="events.jsonl"',
            }
        )
        await response.prepare(request)
        for number, part in enumerate(parts, 1):
            try:
                data = await asyncio.to_thread(part.read_bytes)  # up to [log] part_mb: off the event loop
            except OSError:  # removed past keep_mb while being sent: what came before is still whole steps
                break
            data = data if number == 1 else steps_of_later_part(data)
            await response.write(complete_steps(data) if number == len(parts) else data)
        await response.write_eof()
        return response

    async def _metrics(self, _request: web.Request) -> web.StreamResponse:
        return web.Response(body=exposition(self._registry), headers={"Content-Type": "text/plain; version=0.0.4"})


def complete_steps(log: bytes) -> bytes:
    """The log up to its last whole step: the header, then (event, outcome) line pairs. The FSM thread may be
    between an event's line and its outcome's; `spine replay` is given only steps that finished."""
    lines = log.split(b"\n")[:-1]  # a last line without its newline is still being written
    if lines and lines[-1].startswith(b'{"t":') and b'"event":' in lines[-1]:
        lines = lines[:-1]
    return b"".join(line + b"\n" for line in lines)


def _refusal(refused: OfferRefused) -> web.Response:
    return web.json_response({"error": str(refused)}, status=refused.status)


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _static_file(name: str) -> web.Response:
    suffix = Path(name).suffix
    folder = resources.files("device.monitor").joinpath("static")
    if suffix not in STATIC_TYPES or "/" in name or name.startswith(".") or not folder.joinpath(name).is_file():
        return web.Response(status=404, text="404\n")
    return web.Response(text=folder.joinpath(name).read_text(encoding="utf-8"), content_type=STATIC_TYPES[suffix])
