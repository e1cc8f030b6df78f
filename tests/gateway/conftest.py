"""A live hub (the Procfile's web command on loopback) with real upstream servers registered and discovered."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from servers import services
from servers.discovery import discover
from servers.models import McpServer
from tests.conftest import FIXTURE_SERVER, LiveServer, free_port, hub_env, run_web, sse_messages


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

    def call(
        self,
        tool: str,
        arguments: dict[str, Any],
        request_id: object = "call-1",
        token: str | None = None,
        **headers: str,
    ) -> httpx2.Response:
        """A raw 2026-07-28 tools/call POST to /mcp, as a stateless client sends it."""
        return httpx2.request(
            **modern_request(self.url + "/mcp", token or self.token, tool, arguments, request_id, **headers)
        )

    def open_session(self, token: str | None = None) -> str:
        """A handshake-era session opened with raw POSTs (initialize, then initialized): its Mcp-Session-Id."""
        response = self.post(INITIALIZE, token=token)
        assert response.status_code == 200, response.text
        session_id = response.headers["mcp-session-id"]
        assert self.in_session(session_id, INITIALIZED, token=token).status_code == 202
        return session_id

    def in_session(self, session_id: str, body: bytes, token: str | None = None) -> httpx2.Response:
        """A raw POST within a handshake-era session."""
        return self.post(body, token=token, **{"Mcp-Session-Id": session_id, "MCP-Protocol-Version": "2025-11-25"})


INITIALIZE = (
    b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",'
    b'"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}'
)
INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'


def tool_call(name: str, arguments: dict[str, object], request_id: object = 1, meta: dict | None = None) -> bytes:
    """A tools/call request body: handshake-era, or 2026-07-28 with `meta=MODERN_META`."""
    params: dict[str, object] = {"name": name, "arguments": arguments}
    if meta is not None:
        params["_meta"] = meta
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}).encode()


def register_fixture(slug: str, *flags: str, **fields: object) -> McpServer:
    server = McpServer.objects.create(
        name=slug, slug=slug, command=sys.executable, args=[str(FIXTURE_SERVER), *flags], **fields
    )
    discover(server)
    return server


@contextmanager
def live_hub(**env: str) -> Iterator[Hub]:
    """Servers `fixture` (SDK fixture, both eras) and `quick` (call timeout 2 s), an all-servers token, the web."""
    register_fixture("fixture")
    register_fixture("quick", call_timeout=2)
    _token, secret = services.create_token("tests")
    with run_web(hub_env(**env)) as server:
        yield Hub(server.url, secret, server)


@pytest.fixture
def hub(transactional_db: None) -> Iterator[Hub]:
    """`live_hub` with a 1 MB request limit."""
    with live_hub(MCPHUB_MAX_REQUEST_BYTES="1000000") as hub:
        yield hub


class TcpProxy:
    """A loopback TCP proxy in front of a real server (PostgreSQL, Redis) that a test can cut and restore.

    Cut, it drops every open connection and refuses new ones, as a stopped server does.
    """

    def __init__(self, target: str | tuple[str, int]) -> None:  # a Unix socket path or (host, port)
        self.target = target
        self.port = free_port()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listening = threading.Event()
        self._accepting: threading.Thread | None = None

    def restore(self) -> None:
        """Listen (again) on the same port."""
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        listener.settimeout(0.2)
        self._listening.set()
        self._accepting = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._accepting.start()

    def cut(self) -> None:
        """Close the port and every connection through it."""
        self._listening.clear()
        if self._accepting is not None:
            self._accepting.join()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while self._listening.is_set():
                try:
                    client, _address = listener.accept()
                except TimeoutError:
                    continue
                try:
                    upstream = _connect(self.target)
                except OSError:
                    client.close()
                    continue
                upstream.settimeout(None)
                with self._lock:
                    self._open.update((client, upstream))
                for source, sink in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)


def _connect(target: str | tuple[str, int]) -> socket.socket:
    if isinstance(target, tuple):
        return socket.create_connection(target, timeout=5)
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(target)
    return sock


@contextmanager
def tcp_proxy(url: str) -> Iterator[tuple[TcpProxy, str]]:
    """A running TcpProxy to the server of a PostgreSQL or Redis `url`, and `url` pointed at it."""
    parts = urlsplit(url)
    port = parts.port or (6379 if parts.scheme == "redis" else 5432)
    query = parse_qs(parts.query)
    socket_dir = query.pop("host", [""])[0]  # PostgreSQL on a Unix socket (the embedded one)
    target: str | tuple[str, int] = f"{socket_dir}/.s.PGSQL.{port}" if socket_dir else (parts.hostname or "", port)
    proxy = TcpProxy(target)
    proxy.restore()
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user}@127.0.0.1:{proxy.port}" if user else f"127.0.0.1:{proxy.port}"
    try:
        yield proxy, parts._replace(netloc=netloc, query=urlencode(query, doseq=True)).geturl()
    finally:
        proxy.cut()


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


def modern_request(
    url: str, token: str, tool: str, arguments: dict[str, Any], request_id: object = "call-1", **headers: str
) -> dict[str, Any]:
    """The arguments of `httpx2.request` (or `.stream`) for a raw 2026-07-28 tools/call POST to `url`."""
    return {
        "method": "POST",
        "url": url,
        "content": tool_call(tool, arguments, request_id, meta=MODERN_META),
        "headers": {**modern_headers(token, tool), **headers},
        "timeout": 60,
    }


# The request field each 2026-07-28 method names its target by, mirrored into `Mcp-Name`.
NAME_FIELDS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
NAME_FIELDS.update(dict.fromkeys(("tasks/get", "tasks/update", "tasks/cancel"), "taskId"))


def modern_rpc(
    url: str, token: str, method: str, params: dict[str, Any], capabilities: dict[str, Any], **headers: str
) -> dict[str, Any]:
    """One raw 2026-07-28 request to `url`, declaring `capabilities`; its JSON-RPC answer (a result or an error)."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": capabilities,
    }
    base = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": method,
    }
    name = params.get(NAME_FIELDS.get(method, ""))
    if name is not None:
        base["Mcp-Name"] = name
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": meta}}
    response = httpx2.post(url, content=json.dumps(body), headers={**base, **headers}, timeout=60)
    assert response.status_code in (200, 400, 404), response.text
    return answer(response)


def stateless_call(url: str, token: str, request_id: int, http: httpx2.Client | None = None) -> dict:
    """One 2026-07-28 `fixture__add` tools/call, a raw POST (a new connection unless `http` is given); its result."""
    request = modern_request(url, token, "fixture__add", {"a": request_id, "b": 1}, request_id)
    response = http.request(**request) if http is not None else httpx2.request(**request)
    assert response.status_code == 200, response.text
    return answer(response)["result"]


def answer(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC answer, whether it came as JSON or (a call longer than the keep-alive) as an SSE stream."""
    if response.headers["content-type"] == "text/event-stream":
        return sse_messages(response.text)[-1]
    return response.json()


CAPABILITIES = {"elicitation": {}, "sampling": {}, "roots": {"listChanged": True}}


def rpc(
    hub: Hub,
    path: str,
    method: str,
    params: dict[str, Any],
    capabilities: dict[str, Any] | None = None,
    token: str | None = None,
    url: str | None = None,
) -> dict[str, Any]:
    """One raw 2026-07-28 request to `path` of the hub (or of the web process at `url`), declaring
    `capabilities` (else CAPABILITIES); its JSON-RPC answer."""
    declared = CAPABILITIES if capabilities is None else capabilities
    return modern_rpc((url or hub.url) + path, token or hub.token, method, params, declared)


def elicited(key: str, field: str, value: str) -> dict[str, Any]:
    return {key: {"action": "accept", "content": {field: value}}}


class Logs:
    """A client's `logging_callback`: the log messages it got, in order."""

    def __init__(self) -> None:
        self.messages: list[types.LoggingMessageNotificationParams] = []

    async def __call__(self, params: types.LoggingMessageNotificationParams) -> None:
        self.messages.append(params)

    def seen(self) -> list[tuple[str, object]]:
        """(level, data) of each message."""
        return [(message.level, message.data) for message in self.messages]


async def wait_for_async(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.05)


def text_json(result: types.CallToolResult) -> dict[str, Any]:
    """A tool result's first content, text holding JSON, parsed."""
    content = result.content[0]
    assert isinstance(content, types.TextContent)
    data: dict[str, Any] = json.loads(content.text)
    return data
