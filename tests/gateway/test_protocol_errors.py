"""Bad input at /mcp gets the JSON-RPC or HTTP error for it, never a hang or a 500."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import sse_messages, wait_for
from tests.gateway.conftest import Hub

pytestmark = pytest.mark.slow


def _error_code(body: bytes) -> int:
    text = body.decode()
    if text.startswith("{"):
        return json.loads(text)["error"]["code"]
    return sse_messages(text)[0]["error"]["code"]


def test_malformed_json_is_a_parse_error(hub: Hub) -> None:
    response = hub.post(b'{"jsonrpc": "2.0", "id": 1, "method": ')

    assert response.status_code == 400
    assert _error_code(response.content) == -32700


def test_not_a_jsonrpc_message_is_invalid_request(hub: Hub) -> None:
    response = hub.post(b'{"hello": "world"}')

    assert response.status_code == 400
    assert _error_code(response.content) in (-32600, -32602)


def test_body_over_the_limit_is_413(hub: Hub) -> None:
    # The hub fixture sets MCPHUB_MAX_REQUEST_BYTES to 1 MB.
    big = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "fixture__echo", "arguments": {"text": "x" * 1_500_000}},
        }
    ).encode()

    assert hub.post(big).status_code == 413


STATELESS_CALL = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "fixture__echo"}


def _post_whole_body_then_read(hub: Hub, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """POST as simple clients do (urllib among them): one request per connection, the whole body written, then read."""
    url = urlsplit(hub.url)
    head = {
        "Host": url.netloc,
        "Authorization": f"Bearer {hub.token}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "Content-Length": str(len(body)),
        "Connection": "close",
        **headers,
    }
    request = "POST /mcp HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n"
    with socket.create_connection((url.hostname, url.port), timeout=60) as sock:
        sock.sendall(request.encode() + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.read()


@pytest.mark.parametrize("headers", [STATELESS_CALL, {}], ids=["stateless-hot-path", "sdk"])
def test_body_over_the_limit_is_413_after_the_whole_body(hub: Hub, headers: dict[str, str]) -> None:
    # 6 MiB against the fixture's 1 MB limit, sent in full before the answer is read.
    text = "x" * (6 * 1024 * 1024)
    big = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "fixture__echo", "arguments": {"text": text}},
        }
    ).encode()

    status, body = _post_whole_body_then_read(hub, big, headers)

    assert status == 413
    assert json.loads(body)["error"]["message"] == "request body over the 1000000-byte limit"


def test_foreign_host_is_a_4xx_and_at_most_one_short_log_line(hub: Hub) -> None:
    url = urlsplit(hub.url)
    statuses = []
    for method, path in (("GET", "/"), ("GET", "/admin/"), ("GET", "/api/servers/"), ("POST", "/mcp")):
        with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
            head = f"Host: evil.example\r\nAuthorization: Bearer {hub.token}\r\nContent-Length: 2\r\n"
            sock.sendall(f"{method} {path} HTTP/1.1\r\n{head}Connection: close\r\n\r\n{{}}".encode())
            response = http.client.HTTPResponse(sock)
            response.begin()
            statuses.append(response.status)
    log = Path(hub.server.log)

    def refusals() -> list[str]:
        return [line for line in log.read_text().splitlines() if "evil.example" in line]

    wait_for(lambda: len(refusals()) >= 3, what="Django's three refusals logged")

    assert statuses[:3] == [400, 400, 400] and statuses[3] in (400, 421)
    assert len(refusals()) <= 4
    assert "Traceback" not in log.read_text()


def test_foreign_host_is_refused(hub: Hub) -> None:
    # DNS-rebinding protection: a page on evil.example must not reach the hub through the browser.
    response = hub.post(b"{}", Host="evil.example")

    assert response.status_code in (400, 421)


def test_foreign_origin_is_refused(hub: Hub) -> None:
    response = hub.post(b"{}", Origin="http://evil.example")

    assert response.status_code == 403
