"""servers/upstream/relay.py: one stateless tools/call as a raw POST, against our fixture server over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator

import aiohttp
import mcp_types as types
import pytest
from mcp import MCPError

from servers.upstream import relay
from tests.conftest import http_fixture_server, stdio_config

pytestmark = pytest.mark.anyio


@pytest.fixture
def url() -> Iterator[str]:
    with http_fixture_server() as endpoint:
        yield endpoint


async def post(url: str, name: str, arguments: dict[str, object]) -> dict[str, object]:
    config = stdio_config()  # only its headers, timeout and concurrency are used
    async with relay.make_relay_client(config) as client:
        return await relay.post_tool_call(client, url, "2026-07-28", name, arguments, {}, 30)


async def test_the_result_comes_back_as_json(url: str) -> None:
    result = await post(url, "add", {"a": 1, "b": 2})

    assert result["structuredContent"] == {"result": 3}
    assert result["isError"] is False


async def test_a_jsonrpc_error_is_raised_as_mcp_error(url: str) -> None:
    with pytest.raises(MCPError) as raised:
        await post(url, "no_such_tool", {})

    assert raised.value.error.code in (types.INVALID_PARAMS, types.METHOD_NOT_FOUND)


async def test_nothing_listening_is_a_connection_error() -> None:
    from tests.conftest import free_port

    with pytest.raises(aiohttp.ClientConnectorError):
        await post(f"http://127.0.0.1:{free_port()}/mcp", "echo", {"text": "x"})


def test_an_sse_answer_skips_notifications_and_other_ids() -> None:
    progress = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}}
    other = {"jsonrpc": "2.0", "id": 6, "result": {}}
    ours = {"jsonrpc": "2.0", "id": 7, "result": {"content": []}}
    stream = "".join(f"event: message\r\ndata: {json.dumps(m)}\r\n\r\n" for m in (progress, other, ours))

    assert relay._answer("text/event-stream", (": ping\r\n\r\n" + stream).encode(), 7) == ours
    assert relay._answer("application/json", json.dumps(other).encode(), 7) is None
    assert relay._answer("text/html", b"<h1>502</h1>", 7) is None
