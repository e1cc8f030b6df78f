"""Every tools/call through /mcp leaves one request-log row, written by the batched writer."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import mcp_types as types
import pytest
from asgiref.sync import sync_to_async
from mcp import Client, MCPError

from logs.models import RequestLog
from servers import services
from servers.discovery import discover
from servers.models import McpServer
from tests.conftest import http_fixture_server, hub_env, run_web, wait_for
from tests.gateway.conftest import Hub, register_fixture

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
    assert echo.token_name == "tests"


@pytest.fixture
def crash_hub(transactional_db: None) -> Iterator[Hub]:
    """Our fixture server twice: `fixture` over stdio, `web` over Streamable HTTP (started apart from the hub)."""
    with http_fixture_server() as url:
        discover(McpServer.objects.create(name="web", slug="web", transport="streamable_http", url=url))
        register_fixture("fixture")
        _token, secret = services.create_token("tests")
        with run_web(hub_env()) as server:
            yield Hub(server.url, secret, server)


# Through the SDK client to the upstream (a handshake-era caller; stateless calls to HTTP are relayed
# raw, see test_stateless_calls), over stdio and over HTTP.
@pytest.mark.parametrize("tool", ["fixture__crash", "web__crash"])
async def test_an_upstream_dying_mid_call_is_recorded_as_connection_lost(crash_hub: Hub, tool: str) -> None:
    async with crash_hub.client(mode="legacy") as client:
        crashed = await client.call_tool(tool, {})

    assert crashed.is_error is True
    record = await sync_to_async(wait_for)(
        lambda: RequestLog.objects.filter(tool="crash").first(), what="the crashed call's record"
    )
    assert isinstance(record, RequestLog)
    assert (record.outcome, record.protocol_era) == ("connection_lost", "handshake")
    assert "connection lost during the call" in record.error


@pytest.fixture
def narrow_hub(transactional_db: None) -> Iterator[Hub]:
    """Server `narrow`: one call at a time, and (MCPHUB_MAX_QUEUED_CALLS=1) one more waiting."""
    register_fixture("narrow", max_concurrent_calls=1)
    _token, secret = services.create_token("tests")
    with run_web(hub_env(MCPHUB_MAX_QUEUED_CALLS="1")) as server:
        yield Hub(server.url, secret, server)


async def test_a_call_refused_because_the_queue_is_full_is_recorded_as_overloaded(narrow_hub: Hub) -> None:
    results: list[types.CallToolResult] = []

    async def slow_call(client: Client) -> None:
        results.append(await client.call_tool("narrow__slow", {"seconds": 8}))

    # One call runs, one waits, the third finds the queue full (each of the first two takes 8 s).
    async with narrow_hub.client() as client, anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(slow_call, client)

    refused = [result for result in results if result.is_error]
    assert len(refused) == 1
    assert refused[0].content[0].text == "narrow: 1 calls already waiting for a free slot"
    with anyio.fail_after(30):
        while sorted(await sync_to_async(_outcomes_of)("slow")) != ["ok", "ok", "overloaded"]:
            await anyio.sleep(0.2)
    record = await sync_to_async(RequestLog.objects.get)(outcome="overloaded")
    assert (record.server_slug, record.error) == ("narrow", "narrow: 1 calls already waiting for a free slot")


def _outcomes_of(tool: str) -> list[str]:
    return list(RequestLog.objects.filter(tool=tool).values_list("outcome", flat=True))
