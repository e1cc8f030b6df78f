"""A 2026-07-28 request (tools/call, prompts/get, resources/read) as one raw POST on a keep-alive aiohttp session.

In that era a request is one self-contained POST with one JSON-RPC answer, so the
hub can write the request and read the answer itself. That skips the SDK
client's per-call machinery (request models, memory streams, a task per
request) and httpx, which costs about 1.2 ms of CPU per request here against
0.5 ms for aiohttp (benchmarks/gateway.py measures the whole path). The result
is handed on as parsed JSON, unvalidated: the hub is a proxy, and the client
validates it against the schema the upstream advertised. That includes an
`input_required` result (SEP-2322) and the caching hints of a resource read.

The `_meta` envelope (`envelope`) is the hub's version and identity with the
client capabilities of the downstream client the request is made for, so an
upstream asks for input only a client that declared it can give.
"""

from __future__ import annotations

import itertools
import json
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from mcp import MCPError
from mcp.shared.inbound import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    NAME_BEARING_METHODS,
    encode_header_value,
)
from mcp_types import CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, PROTOCOL_VERSION_META_KEY

from servers.upstream.config import UpstreamConfig

CLIENT_INFO = {"name": "mcphub", "version": "1.0"}
# What the hub declares for a request of its own (discovery, a handshake-era client's call): nothing, as a
# stateless-era server could only ask for input with an `input_required` result no one would answer.
NO_CAPABILITIES: Mapping[str, Any] = {}
USER_AGENT = "mcphub-relay/1.0"
_request_ids = itertools.count(1)


class RelayError(Exception):
    """The upstream answered, but not with a JSON-RPC response to our request."""


def make_relay_client(config: UpstreamConfig) -> aiohttp.ClientSession:
    """A keep-alive pool for one upstream's relayed calls: its headers, connect timeout and concurrency."""
    connector = aiohttp.TCPConnector(limit=config.max_concurrent_calls + 2, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=config.call_timeout, sock_connect=config.connect_timeout)
    # Proxies from the environment as httpx takes them, but only when there are any: with trust_env
    # aiohttp also reads ~/.netrc in a thread on every request.
    trust_env = bool(urllib.request.getproxies())
    headers = dict(config.headers)
    if not any(name.lower() == "user-agent" for name in headers):
        headers["user-agent"] = USER_AGENT  # upstream logs can tell relayed calls apart
    return aiohttp.ClientSession(
        headers=headers,
        connector=connector,
        timeout=timeout,
        trust_env=trust_env,
        cookie_jar=aiohttp.DummyCookieJar(),  # stateless calls: nothing to keep between them
    )


def envelope(version: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` with the 2026-07-28 `_meta` envelope: our version and identity, and the client
    capabilities `params` brought in its own `_meta` (those of the downstream client; none by default)."""
    meta = params.get("_meta")
    capabilities = meta.get(CLIENT_CAPABILITIES_META_KEY, NO_CAPABILITIES) if meta else NO_CAPABILITIES
    stamped = {
        PROTOCOL_VERSION_META_KEY: version,
        CLIENT_INFO_META_KEY: CLIENT_INFO,
        CLIENT_CAPABILITIES_META_KEY: capabilities,
    }
    return {**params, "_meta": {**meta, **stamped} if meta else stamped}


def request_body(request_id: int, version: str, method: str, params: Mapping[str, Any]) -> bytes:
    message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": envelope(version, params)}
    return json.dumps(message, separators=(",", ":")).encode()


async def post_request(
    client: aiohttp.ClientSession,
    url: str,
    version: str,
    method: str,
    params: Mapping[str, Any],
    param_headers: Mapping[str, str],
    timeout: float,
    on_log: Callable[[Any], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """The result object of one request (tools/call, prompts/get, resources/read), as the upstream sent it.

    MCPError for a JSON-RPC error, RelayError for any other answer. aiohttp's errors (connect,
    read, TimeoutError after `timeout` seconds) propagate: the session maps them to upstream
    errors. aiohttp's own timer is cheaper than a cancel scope; the client's default is the
    server's call timeout, so most calls need no timeout object. With `on_log`, an SSE answer
    is read as it comes and the params of each `notifications/message` on it go to `on_log`
    (they belong to this request: the stream is its own).
    """
    request_id = next(_request_ids)
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        MCP_PROTOCOL_VERSION_HEADER: version,
        MCP_METHOD_HEADER: method,
        **param_headers,
    }
    name = params.get(NAME_BEARING_METHODS.get(method, ""))
    if isinstance(name, str):
        headers[MCP_NAME_HEADER] = encode_header_value(name)
    body = request_body(request_id, version, method, params)
    limit = client.timeout
    if timeout != limit.total:
        limit = aiohttp.ClientTimeout(total=timeout, sock_connect=limit.sock_connect)
    async with client.post(url, data=body, headers=headers, allow_redirects=False, timeout=limit) as response:
        content_type = response.headers.get("content-type", "")
        if on_log is not None and content_type.startswith("text/event-stream"):
            message = await _streamed_answer(response.content, request_id, on_log)
        else:
            message = _answer(content_type, await response.read(), request_id)
    if message is None:
        raise RelayError(f"answered HTTP {response.status} without a JSON-RPC response")
    error = message.get("error")
    if isinstance(error, dict):
        raise MCPError(int(error.get("code", 0)), str(error.get("message", "")), error.get("data"))
    result = message.get("result")
    if not isinstance(result, dict):
        raise RelayError("answered a JSON-RPC response without a result object")
    return result


async def post_tool_call(
    client: aiohttp.ClientSession,
    url: str,
    version: str,
    name: str,
    arguments: Mapping[str, Any] | None,
    param_headers: Mapping[str, str],
    timeout: float,
) -> dict[str, Any]:
    """A tools/call through `post_request`, declaring no client capabilities."""
    params: dict[str, Any] = {"name": name}
    if arguments is not None:
        params["arguments"] = arguments
    return await post_request(client, url, version, "tools/call", params, param_headers, timeout)


def _answer(content_type: str, content: bytes, request_id: int) -> dict[str, Any] | None:
    """The JSON-RPC response to `request_id` in a JSON body or an SSE stream (notifications skipped)."""
    try:
        if content_type.startswith("application/json"):
            message = json.loads(content)
            return message if isinstance(message, dict) and message.get("id") == request_id else None
        if content_type.startswith("text/event-stream"):
            for data in _sse_data(content.decode()):
                message = json.loads(data)
                if isinstance(message, dict) and message.get("id") == request_id:
                    return message
    except ValueError:
        return None
    return None


async def _streamed_answer(
    content: aiohttp.StreamReader, request_id: int, on_log: Callable[[Any], Awaitable[None]]
) -> dict[str, Any] | None:
    """The response to `request_id` on an SSE stream read line by line, its log messages passed on as they come."""
    events = _SseEvents()
    async for raw in content:
        message = await _settled(events.feed(raw.decode().rstrip("\r\n")), request_id, on_log)
        if message is not None:
            return message
    return await _settled(events.feed(""), request_id, on_log)


async def _settled(
    data: str | None, request_id: int, on_log: Callable[[Any], Awaitable[None]]
) -> dict[str, Any] | None:
    """One event's data: the response to `request_id`, or None (a log message passed on, or anything else)."""
    try:
        message = json.loads(data) if data is not None else None
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    if message.get("method") == "notifications/message":
        await on_log(message.get("params"))
        return None
    return message if message.get("id") == request_id and "method" not in message else None


class _SseEvents:
    """SSE parsing, one line at a time: `feed` returns an event's data once a blank line ends it
    (multi-line data joined with newlines, per the SSE spec)."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def feed(self, line: str) -> str | None:
        if line.startswith("data:"):
            self._lines.append(line[5:].removeprefix(" "))
        elif not line and self._lines:
            data = "\n".join(self._lines)
            self._lines = []
            return data
        return None


def _sse_data(text: str) -> list[str]:
    """The data of each event in an SSE body."""
    events = _SseEvents()
    found = [data for line in [*text.splitlines(), ""] if (data := events.feed(line)) is not None]
    return found
