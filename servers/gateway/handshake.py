"""The hot path of /mcp for handshake-era sessions: a tools/call in a live session answered without the SDK's
per-request dispatch (servers.gateway.stateless does the same for the 2026-07-28 era).

Claude Desktop, Claude Code, Cursor and VS Code speak the handshake era. The SDK's session
manager costs about 1.5 ms of CPU per call here (transport streams and tasks, the runner's
validation, middleware and tracing), several times the hub's own work (benchmarks/gateway.py).
A tools/call in a session this process holds is served here instead, by `Gateway.call_tool`
itself, with the SDK's per-version validation of the request and sieve of the result. The
answer is the SSE stream the SDK would write: a priming event and `retry`, then the messages
related to the call, then its response, each stored in the session's event store
(servers.gateway.resumable) so that a client whose stream is cut resumes it with
`Last-Event-ID` through the SDK's own replay.

The call's back channel (`CallChannel`) stands in for the SDK's per-request session: what an
upstream asks of the client (sampling, elicitation, roots) and log messages go out on the
call's stream; the client's answers (JSON-RPC responses to ids of ours) and its
`notifications/cancelled` for such a call are taken here too. Everything else goes to the
SDK: other methods, calls that ask for progress, sessions it holds that this module has not
seen yet, and any request that fails a check (the SDK writes the error for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
import mcp_types as types
from mcp.server import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.streamable_http import (
    REQUEST_CANCELLED,
    EventMessage,
    StreamableHTTPServerTransport,
)
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from mcp_types import REQUEST_TIMEOUT
from mcp_types import methods as spec_methods
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from servers.conf import servers_conf
from servers.gateway.resumable import RETRY_MS
from servers.gateway.scope import RequestScope
from servers.gateway.server import Gateway
from servers.gateway.stateless import (
    CALL_PARAMS,
    SSE_HEADERS,
    HeadersOf,
    Receive,
    Scope,
    Send,
    passes_transport_checks,
)

logger = logging.getLogger(__name__)

_ids = itertools.count(1)
# A call answered sooner is written in one go, priming event and all; a longer one gets its priming event then.
PRIMING_DELAY = 0.05


@dataclass
class SessionCalls:
    """What this module keeps of one session: its calls in flight here, and its questions to the client."""

    calls: dict[types.RequestId, asyncio.Task[Any]] = field(default_factory=dict)
    questions: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)

    @property
    def idle(self) -> bool:
        return not self.calls and not self.questions


# Per session id, in this process (as the sessions themselves); idle entries are dropped once there are many.
_sessions: dict[str, SessionCalls] = {}
MAX_SESSIONS = 10_000


def _calls_of(session_id: str) -> SessionCalls:
    calls = _sessions.get(session_id)
    if calls is None:
        if len(_sessions) >= MAX_SESSIONS:
            for key in [key for key, entry in _sessions.items() if entry.idle]:
                del _sessions[key]
        calls = _sessions[session_id] = SessionCalls()
    return calls


def is_candidate(scope: Scope) -> bool:
    """A POST in a handshake-era session (the body says what it is)."""
    if scope["method"] != "POST":
        return False
    session = version = None
    for key, value in scope["headers"]:
        if key == b"mcp-session-id":
            session = value
        elif key == b"mcp-protocol-version":
            version = value.decode("latin-1")
    return session is not None and (version is None or version in HANDSHAKE_PROTOCOL_VERSIONS)


async def handle(
    gateway: Gateway, request_scope: RequestScope, scope: Scope, receive: Receive, send: Send, body: bytes
) -> bool:
    """Serve a complete POST of a handshake-era session if it is ours to serve; False (nothing sent) if not."""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return False
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return False
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in reversed(scope["headers"])}
    session_id = headers["mcp-session-id"]
    live = gateway.live_session(session_id, request_scope.token)
    if live is None:
        return False
    session, transport = live
    calls = _calls_of(session_id)
    method = message.get("method")
    if method is None:
        return await _answer_question(calls, message, send)
    if method == "notifications/cancelled":
        return await _cancel(calls, message, send)
    if method != "tools/call":
        return False
    if not headers.get("content-type", "").lower().startswith("application/json"):
        return False
    scope["mcphub"] = request_scope  # where the gateway's handlers read who asks (RequestScope.of)
    request = cast(Request, HeadersOf(headers, scope))
    if not await passes_transport_checks(gateway, request):
        return False
    version = headers.get("mcp-protocol-version") or session.protocol_version
    request_id, params = message.get("id"), message.get("params")
    if not (
        isinstance(request_id, str | int)
        and not isinstance(request_id, bool)
        and request_id not in calls.calls
        and isinstance(params, dict)
        and params.keys() <= CALL_PARAMS
        and progress_token_from_params(params) is None
        and transport._event_store is not None
    ):
        return False
    try:
        spec_methods.validate_client_request("tools/call", version, params)
        typed = types.CallToolRequestParams.model_validate(params)
    except (ValueError, KeyError, ValidationError):
        return False
    stream = CallStream(transport, str(request_id), send)
    channel = CallChannel(session, stream, calls)
    ctx: ServerRequestContext[Any, Any] = ServerRequestContext(
        session=cast(ServerSession, channel),
        lifespan_context={},
        protocol_version=version,
        method="tools/call",
        params=params,
        request_id=request_id,
        meta=cast(types.RequestParamsMeta, params.get("_meta")),
        request=request,
        close_sse_stream=stream.cut,
    )
    with _holding(transport):
        await _serve(gateway, ctx, typed, version, stream, calls, receive)
    return True


@contextlib.contextmanager
def _holding(transport: StreamableHTTPServerTransport) -> Iterator[None]:
    """What the SDK's transport does for each request it serves: no idle expiry of the session meanwhile."""
    scope, timeout = transport.idle_scope, transport._idle_timeout
    if scope is None or timeout is None:
        yield
        return
    transport._requests_in_flight += 1
    scope.deadline = math.inf
    try:
        yield
    finally:
        transport._requests_in_flight -= 1
        if not transport._requests_in_flight:
            scope.deadline = anyio.current_time() + timeout


async def _serve(
    gateway: Gateway,
    ctx: ServerRequestContext[Any, Any],
    typed: types.CallToolRequestParams,
    version: str,
    stream: CallStream,
    calls: SessionCalls,
    receive: Receive,
) -> None:
    """Run the call and write its answer on `stream`."""
    request_id = ctx.request_id
    assert request_id is not None
    await stream.open()
    # The call runs as a task of its own, which the client's notifications/cancelled cancels (`_cancel`).
    task = asyncio.ensure_future(_call(gateway, ctx, typed, version))
    calls.calls[request_id] = task
    watcher = asyncio.ensure_future(stream.watch(receive))
    response: types.JSONRPCMessage
    try:
        if not (await asyncio.wait({task}, timeout=PRIMING_DELAY))[0]:
            await stream.flush()  # a longer call: the client gets its point to resume from now
        response = await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.cancelled():
            task.cancel()  # this handler itself was cancelled (the server is stopping): so is the call
            raise
        # As the SDK answers a cancelled request in this era, so a resuming client's replay ends too.
        error = types.ErrorData(code=REQUEST_CANCELLED, message="Request cancelled")
        response = types.JSONRPCError(jsonrpc="2.0", id=request_id, error=error)
    finally:
        calls.calls.pop(request_id, None)
        watcher.cancel()
    await stream.write(response, last=True)
    await stream.finish()


async def _call(
    gateway: Gateway, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams, version: str
) -> types.JSONRPCResponse | types.JSONRPCError:
    """The JSON-RPC response to one call, as the SDK's runner would shape it."""
    assert ctx.request_id is not None
    try:
        result = await gateway.call_tool(ctx, params)
        dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        try:
            shaped = spec_methods.serialize_server_result("tools/call", version, dumped)
        except ValidationError:
            logger.exception("tools/call %s: a result the session's version cannot carry", params.name)
            raise MCPError(types.INTERNAL_ERROR, "Handler returned an invalid result") from None  # the SDK's words
        return types.JSONRPCResponse(jsonrpc="2.0", id=ctx.request_id, result=shaped)
    except MCPError as exc:
        return types.JSONRPCError(jsonrpc="2.0", id=ctx.request_id, error=exc.error)
    except Exception:
        logger.exception("tools/call %s failed inside the hub", params.name)
        error = types.ErrorData(code=types.INTERNAL_ERROR, message="Internal error")
        return types.JSONRPCError(jsonrpc="2.0", id=ctx.request_id, error=error)


async def _answer_question(calls: SessionCalls, message: dict[str, Any], send: Send) -> bool:
    """The client's answer to a question asked on one of our streams: 202, and the asker gets it."""
    question_id = message.get("id")
    waiting = calls.questions.pop(question_id, None) if isinstance(question_id, str) else None
    if waiting is None:
        return False  # the SDK's own request (or no one's): the SDK takes it
    if not waiting.done():
        waiting.set_result(message)
    await _accepted(send)
    return True


async def _cancel(calls: SessionCalls, message: dict[str, Any], send: Send) -> bool:
    params = message.get("params")
    request_id = params.get("requestId") if isinstance(params, dict) else None
    task = calls.calls.get(request_id) if isinstance(request_id, str | int) else None
    if task is None:
        return False
    task.cancel()
    await _accepted(send)
    return True


async def _accepted(send: Send) -> None:
    await send({"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


class CallStream:
    """One call's SSE answer, each event stored in the session's event store first.

    While the client reads it, events go out on it; once it is cut (by the hub, mirroring an
    upstream's cut, or by the client's going away), they go to the stream the client resumed
    with `Last-Event-ID` (the SDK's replay registers it under the same stream id), if any.
    """

    def __init__(self, transport: StreamableHTTPServerTransport, stream_id: str, send: Send) -> None:
        self._transport = transport
        self._stream_id = stream_id
        self._send: Send | None = send  # None once the client's stream ended
        self._head: bytes | None = None  # the priming event, until the stream's first write
        self._writing = asyncio.Lock()  # one writer at a time: events go out whole and in order

    async def open(self) -> None:
        """Store the priming event; it goes out with the stream's first write (one write for a quick call)."""
        assert self._transport._event_store is not None
        event_id = await self._transport._event_store.store_event(self._stream_id, None)
        self._head = b"id: %s\r\nretry: %d\r\ndata: \r\n\r\n" % (event_id.encode(), RETRY_MS)

    async def _out(self, data: bytes, last: bool = False) -> bool:
        """Write on the client's stream (its start and the priming event first); False if it has ended."""
        send = self._send
        if send is None:
            return False
        if last:
            self._send = None
        try:
            if self._head is not None:
                data, self._head = self._head + data, None
                await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            await send({"type": "http.response.body", "body": data, "more_body": not last})
        except OSError:
            self._send = None  # the client went away: it may resume
            return False
        return True

    async def write(self, message: types.JSONRPCMessage, last: bool = False) -> None:
        async with self._writing:
            assert self._transport._event_store is not None
            event_id = await self._transport._event_store.store_event(self._stream_id, message)
            if self._send is not None:
                data = message.model_dump_json(by_alias=True, exclude_unset=True).encode()
                if await self._out(b"event: message\r\nid: %s\r\ndata: %s\r\n\r\n" % (event_id.encode(), data), last):
                    return
            resumed = self._transport._request_streams.get(self._stream_id)
            if resumed is not None:
                # A resumed stream that ended too: the event waits in the store.
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await resumed[0].send(EventMessage(message, event_id))

    async def flush(self) -> None:
        """Start the stream now (the priming event), if nothing has yet."""
        async with self._writing:
            if self._head is not None:
                await self._out(b"")

    async def cut(self) -> None:
        """End the client's stream mid-call: it resumes with `Last-Event-ID` (SEP-1699)."""
        async with self._writing:
            await self._out(b"", last=True)

    async def finish(self) -> None:
        """After the response: end the client's stream, or the one it resumed (the SDK's replay would keep it open)."""
        await self._out(b"", last=True)
        if self._stream_id in self._transport._request_streams:
            await self._transport._clean_up_memory_streams(self._stream_id)

    async def watch(self, receive: Receive) -> None:
        """Keep a long call's stream alive; note when the client goes away (in this era that is no cancellation:
        the call goes on, and the client may resume)."""
        keepalive = servers_conf().sse_keepalive_seconds
        while self._send is not None:
            try:
                async with asyncio.timeout(keepalive):
                    message = await receive()
            except TimeoutError:
                async with self._writing:
                    await self._out(b": ping\r\n\r\n")
                continue
            if message["type"] == "http.disconnect":
                self._send = None
                return


class CallChannel:
    """What the hub asks of the SDK's per-request session, for a call served here: questions to the client
    and notifications, on the call's own stream; the client's capabilities from its session."""

    def __init__(self, session: ServerSession, stream: CallStream, calls: SessionCalls) -> None:
        self._session = session
        self._stream = stream
        self._calls = calls

    @property
    def client_capabilities(self) -> types.ClientCapabilities | None:
        return self._session.client_capabilities

    @property
    def can_send_request(self) -> bool:
        return True

    @property
    def protocol_version(self) -> str:
        return self._session.protocol_version

    async def send_request(
        self, request: BaseModel, result_type: type[BaseModel], timeout: float | None = None, metadata: Any = None
    ) -> BaseModel:
        """Ask the client on this call's stream; its answer (a POST to the session) comes back through
        `_answer_question`. An id of ours ("mcphub-N"), which the SDK's own never are."""
        question_id = f"mcphub-{next(_ids)}"
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._calls.questions[question_id] = answer
        data = request.model_dump(by_alias=True, mode="json", exclude_none=True)
        try:
            await self._stream.write(types.JSONRPCRequest(jsonrpc="2.0", id=question_id, **data))
            try:
                async with asyncio.timeout(timeout):
                    reply = await answer
            except TimeoutError:
                raise MCPError(REQUEST_TIMEOUT, f"the client did not answer within {timeout:g} s") from None
        finally:
            self._calls.questions.pop(question_id, None)
        if "error" in reply:
            raise MCPError.from_error_data(types.ErrorData.model_validate(reply["error"]))
        return result_type.model_validate(reply.get("result"))

    async def send_elicit_complete(self, elicitation_id: str) -> None:
        """A URL-mode elicitation done: told on the session's own stream, as the SDK's session tells it."""
        await self._session.send_elicit_complete(elicitation_id)

    async def send_notification(self, notification: BaseModel, related_request_id: Any = None) -> None:
        data = notification.model_dump(by_alias=True, mode="json", exclude_none=True)
        await self._stream.write(types.JSONRPCNotification(jsonrpc="2.0", **data))
