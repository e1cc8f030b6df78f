"""HTTP transports (Streamable HTTP and legacy SSE) over one pooled keep-alive client per upstream."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import httpx2
import mcp.client.sse as sdk_sse
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from servers.upstream.config import UpstreamConfig
from servers.upstream.relay import make_relay_client
from servers.upstream.requester import CURRENT

# Transport-level retries: httpx retries only failed connection attempts, i.e. requests that
# cannot have reached the server, so retrying a tools/call this way never runs it twice.
CONNECT_RETRIES = 2

# The SDK's SSE reader without its 1 MiB cap on one event (see `_lift_sse_event_limit`).
_SSE_WITHOUT_EVENT_LIMIT = functools.partial(sdk_sse.sse_within_origin, max_event_size=None)


class HttpLink:
    """One connection attempt's HTTP state, shared by the SDK transport and the stateless relay."""

    def __init__(self) -> None:
        self.relay: aiohttp.ClientSession | None = None  # for relayed stateless calls, while the transport runs
        self.lost = False  # a handshake-era server answered 404 to our session id: it restarted and forgot us

    async def on_response(self, response: httpx2.Response) -> None:
        if response.status_code == 404 and "mcp-session-id" in response.request.headers:
            self.lost = True


async def mirror_stream_cut(request: httpx2.Request) -> None:
    """The SDK client resumes a request's stream the server cut (SEP-1699): cut the downstream client's too.

    The resumption is a GET with `Last-Event-ID`, sent in the context of the task that sent the request
    (the SDK's streams carry the sender's context), so `CURRENT` names the client the request is for.
    That client then resumes from the hub as it would have from the server.
    """
    if request.method == "GET" and "last-event-id" in request.headers:
        requester = CURRENT.get()
        if requester is not None and requester.close_stream is not None:
            await requester.close_stream()


def make_http_client(config: UpstreamConfig, link: HttpLink | None = None) -> httpx2.AsyncClient:
    """A keep-alive pool for one upstream: its headers, timeouts and concurrency."""
    hooks: dict[str, list[Any]] = {"request": [mirror_stream_cut]}
    if link:
        hooks["response"] = [link.on_response]
    limits = httpx2.Limits(
        max_connections=config.max_concurrent_calls + 2,  # + the GET stream and a spare
        max_keepalive_connections=config.max_concurrent_calls + 2,
        keepalive_expiry=60,
    )
    return httpx2.AsyncClient(
        headers=config.headers,
        # Reads may be long (SSE streams, slow tools); the call timeout is enforced above this layer.
        timeout=httpx2.Timeout(config.connect_timeout, read=max(config.call_timeout * 2, 300)),
        transport=httpx2.AsyncHTTPTransport(retries=CONNECT_RETRIES, limits=limits),
        event_hooks=hooks,
        follow_redirects=False,
    )


@asynccontextmanager
async def http_transport(config: UpstreamConfig, link: HttpLink) -> AsyncIterator[Any]:
    """The SDK transport for this upstream, with our pooled client (closed when the transport ends)."""
    if config.transport == "sse":
        _lift_sse_event_limit()

        def factory(headers: Any = None, timeout: Any = None, auth: Any = None) -> httpx2.AsyncClient:
            return make_http_client(config, link)

        async with sse_client(config.url, httpx_client_factory=factory, sse_read_timeout=86400) as streams:
            yield streams
        return
    async with (
        make_http_client(config, link) as client,
        make_relay_client(config) as relay,
        streamable_http_client(config.url, http_client=client, max_sse_event_size=None) as streams,
    ):
        link.relay = relay
        try:
            yield streams
        finally:
            link.relay = None


def _lift_sse_event_limit() -> None:
    """Let the SDK's legacy SSE client read events of any size: results of several MB must pass.

    `streamable_http_client` takes `max_sse_event_size=None`, but `sse_client` has no such
    parameter (mcp 2.3.0) and reads through its module's `sse_within_origin`, capped at 1 MiB;
    so that name is rebound here, before each SSE connection (idempotent).
    tests/servers/test_upstream_http.py's 3 MB result over SSE fails without it.
    """
    sdk_sse.sse_within_origin = _SSE_WITHOUT_EVENT_LIMIT
