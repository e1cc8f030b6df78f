"""Bad input at /mcp gets the JSON-RPC or HTTP error for it, never a hang or a 500."""

from __future__ import annotations

import json

import pytest

from tests.gateway.conftest import Hub

pytestmark = pytest.mark.slow


def _error_code(body: bytes) -> int:
    text = body.decode()
    if text.startswith("{"):
        return json.loads(text)["error"]["code"]
    data = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
    return json.loads(data)["error"]["code"]


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


def test_foreign_host_is_refused(hub: Hub) -> None:
    # DNS-rebinding protection: a page on evil.example must not reach the hub through the browser.
    response = hub.post(b"{}", Host="evil.example")

    assert response.status_code in (400, 421)


def test_foreign_origin_is_refused(hub: Hub) -> None:
    response = hub.post(b"{}", Origin="http://evil.example")

    assert response.status_code == 403
