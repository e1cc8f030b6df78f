"""Every tools/call through /mcp leaves one request-log row, written by the batched writer."""

from __future__ import annotations

import anyio
import pytest
from asgiref.sync import sync_to_async
from mcp import MCPError

from logs.models import RequestLog
from tests.gateway.conftest import Hub

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def _outcomes() -> dict[str, str]:
    return dict(RequestLog.objects.values_list("tool", "outcome"))


async def test_calls_are_recorded_with_their_outcome(hub: Hub) -> None:
    async with hub.client() as client:
        await client.call_tool("fixture__echo", {"text": "hello"})
        await client.call_tool("fixture__fail", {})
        await client.call_tool("quick__slow", {"seconds": 20})
        with pytest.raises(MCPError):
            await client.call_tool("fixture__missing", {})
        await client.read_resource("mcphub+fixture:fixture://hello")

    expected = {
        "echo": "ok",
        "fail": "tool_error",
        "slow": "timeout",
        "fixture__missing": "protocol_error",
        "resource:fixture://hello": "ok",
    }
    with anyio.fail_after(30):
        while await sync_to_async(_outcomes)() != expected:
            await anyio.sleep(0.2)

    echo = await sync_to_async(RequestLog.objects.get)(tool="echo")
    assert echo.server_slug == "fixture"
    assert echo.protocol_era == "stateless"
    assert echo.latency_ms > 0
    assert echo.response_bytes > 0
    assert echo.token_id is not None
