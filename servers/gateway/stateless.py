"""The hot path of /mcp: a 2026-07-28 tools/call answered without the SDK's per-request dispatch.

The SDK's dispatch of one stateless POST (request context, pydantic models in
and out, middleware) and its client side towards the upstream cost about 4.5 ms
of CPU per call together, several times the hub's own work (benchmarks/gateway.py). A 2026-07-28 tools/call is one
self-contained POST with one answer, so it is served here: the same checks as
the SDK's stateless entry, made with the SDK's own functions (content type,
DNS-rebinding protection, Accept, routing headers, `_meta` envelope,
`Mcp-Param-*` headers), then `Gateway.call_tool_json`. The log messages of a call
that opted in (`_meta` `io.modelcontextprotocol/logLevel`) go out on its own
response, which then becomes an SSE stream.

Everything else goes to the SDK's session manager with the body replayed:
other methods, handshake-era sessions, calls that ask for progress (those need
the SDK's notification stream), retries of a multi-round call (their
`inputResponses` are validated by the SDK), and any request that fails a check
(the SDK writes the error for it). A first round answered `input_required` is
passed on from here, its state sealed (servers.gateway.rounds).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import mcp_types as types
from mcp.server.streamable_http import check_accept_headers
from mcp.server.transport_security import TransportSecurityMiddleware
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    MCP_PARAM_HEADER_PREFIX,
    InboundModernRoute,
    classify_inbound_request,
    find_duplicated_routing_header,
    validate_mcp_param_headers,
)
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.requests import Request

from servers.conf import servers_conf
from servers.gateway.recorder import CallRecorder
from servers.gateway.scope import RequestScope
from servers.gateway.server import Gateway
from servers.upstream.log_routes import NOTIFICATION, LogRoute, logging_to, requested_level

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Any
Send = Any

CALL_PARAMS = frozenset({"name", "arguments", "_meta"})
_MCP_PARAM_PREFIX = MCP_PARAM_HEADER_PREFIX.lower()
SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


def is_candidate(scope: Scope) -> bool:
    """Whether the headers alone say: a stateless-era tools/call POST (the body decides the rest)."""
    if scope["method"] != "POST":
        return False
    version = method = None
    for key, value in scope["headers"]:
        if key == b"mcp-protocol-version":
            version = value.decode("latin-1")
        elif key == b"mcp-method":
            method = value
        elif key == b"mcp-session-id":
            return False
    return method == b"tools/call" and version in MODERN_PROTOCOL_VERSIONS


async def read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The request body, reading on only while within `limit` bytes; True as well when it was all read."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body"):
            return b"".join(chunks), True
        if size > limit:
            return b"".join(chunks), False


def replaying(body: bytes, complete: bool, receive: Receive) -> Receive:
    """A `receive` that first hands out what was already read, then goes on with the real one."""
    pending = [{"type": "http.request", "body": body, "more_body": not complete}]

    async def replay() -> dict[str, Any]:
        return pending.pop() if pending else await receive()

    return replay


async def handle(
    gateway: Gateway, request_scope: RequestScope, scope: Scope, receive: Receive, send: Send, body: bytes
) -> bool:
    """Serve a complete stateless tools/call body; False (nothing sent) when the SDK must serve it."""
    pairs = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]
    headers = dict(reversed(pairs))  # the first of repeated headers wins, as with Starlette's Headers
    checked = await _checked_call(gateway, request_scope, pairs, headers, body)
    if checked is None:
        return False
    request_id, route, params = checked
    call = CallRecorder(request_scope, params["name"], headers, route.protocol_version)
    id_json = json.dumps(request_id).encode()
    keepalive = servers_conf().sse_keepalive_seconds
    streaming = False  # True once the answer became an SSE stream (a long call, or a log message to pass on)
    writing = asyncio.Lock()  # one writer at a time: the stream's start goes out first, once
    hung_up = False
    call_task = asyncio.current_task()
    assert call_task is not None

    async def write_event(event: bytes) -> None:
        nonlocal streaming
        async with writing:
            if not streaming:
                streaming = True
                await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            await send({"type": "http.response.body", "body": event, "more_body": True})

    async def watch() -> None:
        """Cancel the call when the client goes away (this era's cancellation); keep a long call's stream alive."""
        nonlocal hung_up
        while True:
            try:
                async with asyncio.timeout(keepalive):
                    message = await receive()
            except TimeoutError:
                await write_event(b": ping\r\n\r\n")
                continue
            if message["type"] == "http.disconnect":
                hung_up = True
                call_task.cancel()
                return

    # Plain asyncio rather than an anyio task group: this runs once per call, and the group's
    # cancel scopes cost more than the rest of this function (the server is asyncio either way).
    watcher = asyncio.ensure_future(watch())
    answer: tuple[int, bytes] | None = None  # HTTP status and JSON-RPC response
    try:
        with logging_to(_log_route(params, request_scope, write_event)):
            answer = await _call(gateway, request_scope, call, id_json, params)
    except asyncio.CancelledError:
        if not hung_up:
            raise
        call_task.uncancel()
    finally:
        watcher.cancel()
    if answer is None:
        return True  # the client went away; the call was cancelled upstream and recorded as such
    status, body = answer
    if streaming:
        await send({"type": "http.response.body", "body": b"event: message\r\ndata: " + body + b"\r\n\r\n"})
    else:
        response_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})
    return True


def _log_route(
    params: dict[str, Any], request_scope: RequestScope, write_event: Callable[[bytes], Awaitable[None]]
) -> LogRoute | None:
    """The call's log messages as events of its own response stream, at the level it opted in at (if it did)."""
    level = requested_level(params.get("_meta"))
    if level is None:
        return None

    async def emit(log: types.LoggingMessageNotificationParams) -> None:
        message = {
            "jsonrpc": "2.0",
            "method": NOTIFICATION,
            "params": log.model_dump(mode="json", by_alias=True, exclude_none=True),
        }
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
        await write_event(b"event: message\r\ndata: " + data + b"\r\n\r\n")

    return LogRoute(level, emit, label=request_scope.slug is None)


async def _call(
    gateway: Gateway, request_scope: RequestScope, call: CallRecorder, id_json: bytes, params: dict[str, Any]
) -> tuple[int, bytes]:
    """The HTTP status and JSON-RPC response of one call."""
    try:
        result = await gateway.call_tool_json(request_scope, call, params)
        return 200, b'{"jsonrpc":"2.0","id":%s,"result":%s}' % (id_json, result)
    except MCPError as exc:
        return _error(id_json, exc.error)
    except Exception:
        logger.exception("tools/call %s failed inside the hub", params["name"])
        call.finish("protocol_error", error="internal error", code=types.INTERNAL_ERROR)
        return _error(id_json, types.ErrorData(code=types.INTERNAL_ERROR, message="Internal error"))


class HeadersOf:
    """What the SDK's header checks (and the gateway's handlers) read of a Starlette Request: `.headers`, here
    one decoded dict, and `.scope`."""

    def __init__(self, headers: dict[str, str], scope: Scope | None = None) -> None:
        self.headers = headers
        self.scope = scope if scope is not None else {}


async def passes_transport_checks(gateway: Gateway, request: Request) -> bool:
    """The SDK's DNS-rebinding protection and `Accept` check (JSON and SSE) for a POST."""
    security = TransportSecurityMiddleware(gateway.session_manager.security_settings)
    if await security.validate_request(request, is_post=True) is not None:
        return False
    return check_accept_headers(request) == (True, True)


async def _checked_call(
    gateway: Gateway, request_scope: RequestScope, pairs: list[tuple[str, str]], headers: dict[str, str], body: bytes
) -> tuple[Any, InboundModernRoute, dict[str, Any]] | None:
    """The id, envelope and params of a call that passes every check of the SDK's stateless entry, else None."""
    # Starlette's Headers decodes every header on every lookup, and the checks make a dozen.
    if not await passes_transport_checks(gateway, cast(Request, HeadersOf(headers))):
        return None
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not (
        isinstance(message, dict)
        and message.get("jsonrpc") == "2.0"
        and message.get("method") == "tools/call"
        and isinstance(message.get("id"), str | int)
        and not isinstance(message.get("id"), bool)
        and isinstance(params := message.get("params"), dict)
        and isinstance(params.get("name"), str)
        and isinstance(params.get("arguments", {}), dict)
        and params.keys() <= CALL_PARAMS
        and progress_token_from_params(params) is None
    ):
        return None
    if find_duplicated_routing_header(pairs) is not None:
        return None
    route = classify_inbound_request(message, headers=headers)
    if not isinstance(route, InboundModernRoute):
        return None
    if _mcp_param_rejected(gateway, request_scope, headers, params):
        return None
    return message["id"], route, params


def _mcp_param_rejected(
    gateway: Gateway, request_scope: RequestScope, headers: Mapping[str, str], params: dict[str, Any]
) -> bool:
    """The SDK's Mcp-Param-* check against the called tool's schema (as its stateless entry makes it).

    Skipped, with the same verdict, when the request has no such header and the tool declares none.
    """
    arguments = params.get("arguments") or {}
    sent = any(header.startswith(_MCP_PARAM_PREFIX) for header in headers)
    if not sent and not (arguments and gateway.declares_param_headers(request_scope, params["name"])):
        return False
    schema = gateway.tool_input_schema(request_scope.slug, params["name"])
    return schema is not None and validate_mcp_param_headers(schema, arguments, headers) is not None


def _error(id_json: bytes, error: types.ErrorData) -> tuple[int, bytes]:
    """A JSON-RPC error response, with the HTTP status the SDK's table gives its code."""
    payload = json.dumps(error.model_dump(mode="json", by_alias=True, exclude_none=True), separators=(",", ":"))
    body = b'{"jsonrpc":"2.0","id":%s,"error":%s}' % (id_json, payload.encode())
    return ERROR_CODE_HTTP_STATUS.get(error.code, 200), body
