"""The ASGI app behind /mcp and /mcp/<slug>/: bearer-token check, then the SDK's session manager.

A stateless-era tools/call takes the hot path of servers.gateway.stateless instead
(unless MCPHUB_FAST_PATH is off).

Django's ASGI handler ignores the lifespan protocol, so the gateway starts
lazily on the first request, in a long-lived task of the server's event loop
(the SDK's session manager and our upstream sessions need one task to own
their task groups). Under a server that speaks lifespan (uvicorn) it is also
started at startup and stopped cleanly at shutdown; elsewhere stdio children
are killed at interpreter exit (servers.upstream.stdio).

A graceful stop under uvicorn: on SIGTERM/SIGINT uvicorn stops accepting,
lets requests in flight finish (at most the Procfile's
``--timeout-graceful-shutdown``), then runs the lifespan shutdown. Streams that
never finish on their own (a handshake-era GET stream, a ``subscriptions/listen``)
would hold that wait, so the signal also ends them at once and new ones are
refused (503). A call still running ``STOP_GRACE`` seconds after the signal is
cancelled and answered 503 by the hub (uvicorn's own cancel, at its timeout,
would answer 500). The lifespan shutdown stops the gateway, then writes the
queued request-log records (logs.writer.close_writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

import anyio
import mcp_types as types
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from sse_starlette.sse import AppStatus

from logs.writer import close_writer, get_writer
from servers.blocking import run_blocking
from servers.conf import servers_conf
from servers.gateway import handshake, stateless
from servers.gateway.scope import CURRENT_SLUG, RequestScope
from servers.gateway.server import Gateway
from servers.tokens import AuthUnavailable, TokenInfo, authenticate_cached, bearer_secret

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Any
Send = Any
Handler = Callable[[Scope, Receive, Send], Awaitable[None]]

# Seconds a call in flight may still take after SIGTERM: below the Procfile's --timeout-graceful-shutdown
# (3 s), and with the lifespan shutdown well within honcho's 5 s before it sends SIGKILL.
STOP_GRACE = 2.0

# A body over the limit is still read (and dropped) up to this much, for this long, before the 413.
DRAIN_LIMIT = 256 * 1024 * 1024
DRAIN_SECONDS = 30.0


class GatewayRunner:
    """Owns the process's Gateway and the task it runs in."""

    def __init__(self) -> None:
        self.gateway: Gateway | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready: anyio.Event | None = None
        self._stop: anyio.Event | None = None
        self._error: BaseException | None = None
        self.stopping = False  # the server is stopping: no new long-lived streams
        self._cut = False  # STOP_GRACE passed: requests still running are cancelled
        self._requests: set[asyncio.Task[Any]] = set()

    async def ensure_started(self) -> Gateway:
        if self._task is None or self._task.done():
            self.gateway = Gateway()
            self._ready = anyio.Event()
            self._stop = anyio.Event()
            self._error = None
            self._task = asyncio.get_running_loop().create_task(self._run(self.gateway, self._ready, self._stop))
        assert self._ready is not None
        await self._ready.wait()
        if self._error is not None or self.gateway is None:
            raise RuntimeError(f"the MCP gateway failed to start: {self._error}")
        return self.gateway

    async def _run(self, gateway: Gateway, ready: anyio.Event, stop: anyio.Event) -> None:
        try:
            await gateway.run(ready.set, stop)
        except BaseException as exc:
            self._error = exc
            logger.exception("MCP gateway stopped with an error")
        finally:
            ready.set()

    def begin_stop(self) -> None:
        """The server is stopping: end the open streams (they would hold its wait for open connections)."""
        self.stopping = True
        if self.gateway is not None:
            self.gateway.end_streams()
        asyncio.get_running_loop().call_later(STOP_GRACE, self._cut_requests)

    def _cut_requests(self) -> None:
        self._cut = True
        AppStatus.should_exit = True  # and sse-starlette ends any SSE answer still open
        for task in self._requests:
            task.cancel()

    async def serve(self, handler: Handler, scope: Scope, receive: Receive, send: Send) -> None:
        """Run one /mcp request; cut at STOP_GRACE after a stop signal with a 503 (or the end of its stream)."""
        task = asyncio.current_task()
        assert task is not None
        self._requests.add(task)
        try:
            await handler(scope, receive, send)
        except asyncio.CancelledError:
            if not self._cut:
                raise
            task.uncancel()
            await _end_cut_response(send)
        finally:
            self._requests.discard(task)

    async def stop(self) -> None:
        if self._task is not None and self._stop is not None:
            self._stop.set()
            await self._task
            self._task = None


runner = GatewayRunner()


async def _json_response(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _end_cut_response(send: Send) -> None:
    """A 503 for a request cut at shutdown, or, if its response had started (a stream), the stream's end."""
    try:
        await _json_response(send, 503, {"error": "the hub is shutting down; retry"}, [(b"retry-after", b"1")])
    except RuntimeError:  # the server refuses a second response start: end the body instead
        with contextlib.suppress(RuntimeError, OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _opens_stream(scope: Scope) -> bool:
    """A request whose response stays open until the client or the hub ends it."""
    return scope["method"] == "GET" or _header(scope, b"mcp-method") == "subscriptions/listen"


def _end_streams_on_stop_signals() -> None:
    """Chain to the server's SIGTERM/SIGINT handlers (uvicorn's graceful stop): after it, end the open streams.

    uvicorn gives the application no notice before its lifespan shutdown, which comes
    only after every connection closed (or the graceful-shutdown timeout passed).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    # sse-starlette would end every SSE answer at the signal, the answers of handshake-era calls still
    # running included (the client then sees a cut body): the hub ends its streams itself, calls at STOP_GRACE.
    AppStatus.disable_automatic_graceful_drain()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if not callable(previous) or previous is signal.default_int_handler:
            continue  # the server does not stop gracefully on this signal: nothing to chain to

        def handler(sig: int, frame: FrameType | None, previous: Any = previous) -> None:
            previous(sig, frame)
            loop.call_soon_threadsafe(runner.begin_stop)

        signal.signal(signum, handler)


async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    """Start the log writer and the gateway with the server; on shutdown stop the gateway (and every
    upstream child), then write the queued request-log records."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                get_writer()  # now, not at the first call: it replays what an earlier process spooled
                await runner.ensure_started()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            _end_streams_on_stop_signals()
            # What startup loaded (Django, the SDK, pydantic's schemas: most of the heap) lives as long as the
            # process: out of the collector's sight, a full collection no longer walks it. Those walks had
            # stalled the event loop for about 100 ms at a time: p99 at 32 concurrent calls went 110 -> 28 ms
            # (benchmarks/gateway.py).
            gc.freeze()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                await runner.stop()
            finally:
                if not await run_blocking(close_writer):
                    logger.warning("request-log records not written at shutdown were spooled to disk")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def mcp_app(scope: Scope, receive: Receive, send: Send) -> None:
    """/mcp and /mcp/<slug>/: 401 without a valid token, 404/403 for an unknown or forbidden server."""
    path = scope["path"].rstrip("/")
    slug = None if path == "/mcp" else path.removeprefix("/mcp/")
    if slug is not None and (not slug or "/" in slug):
        await _json_response(send, 404, {"error": "not found"}, [])
        return
    if runner.stopping and _opens_stream(scope):
        await _json_response(send, 503, {"error": "the hub is shutting down"}, [(b"retry-after", b"1")])
        return
    secret = bearer_secret(_header(scope, b"authorization"))
    try:
        token = await authenticate_cached(secret) if secret else None
    except AuthUnavailable as exc:
        retry_after = str(round(exc.retry_after)).encode()
        await _json_response(send, 503, {"error": f"{exc}; try again shortly"}, [(b"retry-after", retry_after)])
        return
    if token is None:
        await _json_response(
            send,
            401,
            {"error": "a valid token is required: Authorization: Bearer <token>"},
            [(b"www-authenticate", b'Bearer realm="mcphub"')],
        )
        return
    gateway = await runner.ensure_started()
    if slug is not None:
        entry = gateway.snapshot.servers.get(slug)
        if entry is None:
            await _json_response(send, 404, {"error": f"no enabled server {slug!r}"}, [])
            return
        if not token.allows(entry.id):
            await _json_response(send, 403, {"error": f"this token may not use {slug!r}"}, [])
            return
    CURRENT_SLUG.set(slug)
    request_scope = RequestScope(token=token, slug=slug)
    if scope["method"] == "POST":
        limit = servers_conf().max_request_bytes
        body, complete = await stateless.read_body(receive, limit)
        if len(body) > limit:
            await _too_large(receive, send, limit, complete)
            return
        fast = servers_conf().fast_path and complete
        if (
            fast
            and stateless.is_candidate(scope)
            and await stateless.handle(gateway, request_scope, scope, receive, send, body)
        ):
            return
        if (
            fast
            and handshake.is_candidate(scope)
            and await handshake.handle(gateway, request_scope, scope, receive, send, body)
        ):
            return
        receive = stateless.replaying(body, complete, receive)
    # The SDK binds a handshake-era session to the user that opened it: another token gets 404 for it.
    sdk_scope = {**scope, "mcphub": request_scope, "user": session_owner(token)}
    await gateway.session_manager.handle_request(sdk_scope, receive, _with_reasons(send))


# The SDK's 2026-07-28 entry refuses these with an empty body; a client (or its developer) should read why.
REASONS = {
    405: "this endpoint takes POST (GET and DELETE only with an Mcp-Session-Id)",
    406: "the Accept header must include application/json (and text/event-stream for a stream)",
}


def _with_reasons(send: Send) -> Send:
    """`send`, with a JSON reason put into the SDK's bodiless 405 and 406 answers."""
    reason: bytes | None = None

    async def wrapped(message: dict[str, Any]) -> None:
        nonlocal reason
        if message["type"] == "http.response.start" and message["status"] in REASONS:
            if dict(message.get("headers", [])).get(b"content-length") == b"0":
                headers = [(k, v) for k, v in message["headers"] if k not in (b"content-length", b"content-type")]
                reason = json.dumps({"error": REASONS[message["status"]]}).encode()
                headers += [(b"content-type", b"application/json"), (b"content-length", str(len(reason)).encode())]
                message = {**message, "headers": headers}
        elif message["type"] == "http.response.body" and reason is not None:
            message = {**message, "body": reason}
            reason = None
        await send(message)

    return wrapped


@functools.lru_cache(maxsize=1024)
def session_owner(token: TokenInfo) -> AuthenticatedUser:
    """The token as the SDK's session manager identifies a session's owner."""
    return AuthenticatedUser(AccessToken(token=f"hub-token-{token.id}", client_id=f"hub-token-{token.id}", scopes=[]))


async def _too_large(receive: Receive, send: Send, limit: int, complete: bool) -> None:
    """413 for a body over the limit, read to its end first (within DRAIN_LIMIT).

    A client that writes its whole body before reading would otherwise see the
    connection reset (unread data at close) instead of the answer.
    """
    drained = 0
    with anyio.move_on_after(DRAIN_SECONDS):
        while not complete and drained < DRAIN_LIMIT:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client has gone
            drained += len(message.get("body", b""))
            complete = not message.get("more_body")
    error = {"code": types.INVALID_REQUEST, "message": f"request body over the {limit}-byte limit"}
    await _json_response(send, 413, {"jsonrpc": "2.0", "id": None, "error": error}, [(b"connection", b"close")])
