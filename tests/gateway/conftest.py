"""A live hub (daphne on loopback) with real upstream servers registered and discovered."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from servers import services
from servers.models import McpServer
from tests.conftest import FIXTURE_SERVER, LiveServer, hub_env, run_web


@dataclass
class Hub:
    url: str
    token: str
    server: LiveServer

    @asynccontextmanager
    async def client(
        self, path: str = "/mcp", token: str | None = None, mode: str = "auto", **options: object
    ) -> AsyncIterator[Client]:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http,
            Client(
                streamable_http_client(self.url + path, http_client=http, max_sse_event_size=None),
                mode=mode,
                cache=None,
                read_timeout_seconds=60,
                **options,  # type: ignore[arg-type]
            ) as client,
        ):
            yield client

    def post(self, body: bytes, token: str | None = None, **headers: str) -> httpx2.Response:
        """A raw POST to /mcp, for what the SDK client would never send."""
        base = {
            "Authorization": f"Bearer {token or self.token}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        }
        return httpx2.post(self.url + "/mcp", content=body, headers={**base, **headers}, timeout=30)


def register_fixture(slug: str, *flags: str, **fields: object) -> McpServer:
    server = McpServer.objects.create(
        name=slug, slug=slug, command=sys.executable, args=[str(FIXTURE_SERVER), *flags], **fields
    )
    services.discover_now(server)
    return server


@pytest.fixture
def hub(transactional_db: None) -> Iterator[Hub]:
    """Servers `fixture` (SDK fixture, both eras) and `quick` (call timeout 2 s), an all-servers token."""
    register_fixture("fixture")
    register_fixture("quick", call_timeout=2)
    _token, secret = services.create_token("tests")
    with run_web(hub_env(MCPHUB_MAX_REQUEST_BYTES="1000000")) as server:
        yield Hub(server.url, secret, server)


MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


def modern_headers(token: str, tool: str) -> dict[str, str]:
    """The headers of a 2026-07-28 tools/call POST."""
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": tool,
    }


def stateless_call(url: str, token: str, request_id: int, http: httpx2.Client | None = None) -> dict:
    """One 2026-07-28 `fixture__add` tools/call, a raw POST (a new connection unless `http` is given); its result."""
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "fixture__add", "arguments": {"a": request_id, "b": 1}, "_meta": MODERN_META},
    }
    post = http.post if http is not None else httpx2.post
    response = post(url, content=json.dumps(body), headers=modern_headers(token, "fixture__add"), timeout=60)
    assert response.status_code == 200, response.text
    text = response.text
    if not text.startswith("{"):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
    return json.loads(text)["result"]
