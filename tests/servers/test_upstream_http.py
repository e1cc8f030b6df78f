"""Pooled HTTP upstreams (Streamable HTTP and SSE) against real servers on loopback."""

from __future__ import annotations

import pytest

from servers.upstream.config import UpstreamConfig
from servers.upstream.errors import UpstreamUnavailable
from servers.upstream.manager import upstream_manager
from servers.upstream.session import SessionHooks
from tests.conftest import everything_http_server, free_port, http_fixture_server

pytestmark = pytest.mark.anyio


def http_config(url: str, transport: str = "streamable_http", **overrides: object) -> UpstreamConfig:
    values: dict[str, object] = {
        "id": 1,
        "slug": "remote",
        "transport": transport,
        "url": url,
        "connect_timeout": 20.0,
        "call_timeout": 30.0,
    }
    values.update(overrides)
    return UpstreamConfig(**values)  # type: ignore[arg-type]


async def test_streamable_http_call_with_headers_and_progress() -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    with http_fixture_server() as url:
        async with upstream_manager() as manager:
            upstream = manager.pool(http_config(url, headers={"X-Team": "blue"}))
            whoami = await upstream.call_tool("whoami", {})
            slow = await upstream.call_tool("slow", {"seconds": 0.5}, progress_callback=on_progress)

    assert "x-team" in whoami.content[0].text.lower()
    assert slow.is_error is not True
    assert progress


async def test_five_megabyte_result_over_an_sse_response() -> None:
    # Handshake era over a stateful SSE response stream: the SDK's 1 MiB event limit must be lifted.
    with http_fixture_server("--legacy-only") as url:
        async with upstream_manager() as manager:
            result = await manager.pool(http_config(url)).call_tool("big", {"size_bytes": 5_000_000})

    assert len(result.content[0].text) == 5_000_000


async def test_legacy_sse_transport_with_a_big_result() -> None:
    # The SDK's sse_client caps one event at 1 MiB and takes no parameter for it: without
    # servers.upstream.http._lift_sse_event_limit the 3 MB result fails with an SSEError.
    with http_fixture_server("--sse") as url:
        async with upstream_manager() as manager:
            upstream = manager.pool(http_config(url, transport="sse"))
            echo = await upstream.call_tool("echo", {"text": "over sse"})
            big = await upstream.call_tool("big", {"size_bytes": 3_000_000})

    assert echo.content[0].text == "over sse"
    assert len(big.content[0].text) == 3_000_000


async def test_restarted_handshake_server_is_reinitialized_transparently() -> None:
    port = free_port()
    restarts: list[str] = []
    async with upstream_manager(SessionHooks(on_restart=lambda _id, reason: restarts.append(reason))) as manager:
        with http_fixture_server("--legacy-only", port=port) as url:
            upstream = manager.pool(http_config(url))
            assert (await upstream.call_tool("echo", {"text": "one"})).content[0].text == "one"
        # Same port, new process: our Mcp-Session-Id is unknown there (404).
        with http_fixture_server("--legacy-only", port=port):
            result = await upstream.call_tool("echo", {"text": "two"})

    assert result.content[0].text == "two"
    assert any("session not found" in reason for reason in restarts)


async def test_unreachable_server_fails_fast() -> None:
    async with upstream_manager() as manager:
        upstream = manager.pool(http_config(f"http://127.0.0.1:{free_port()}/mcp"))
        with pytest.raises(UpstreamUnavailable, match="remote"):
            await upstream.call_tool("echo", {"text": "x"})


@pytest.mark.parametrize("mode", ["streamableHttp", "sse"])
async def test_server_everything_over_http(mode: str) -> None:
    transport = "streamable_http" if mode == "streamableHttp" else "sse"
    eras: list[str] = []
    with everything_http_server(mode) as url:
        async with upstream_manager(SessionHooks(on_era=lambda _id, era, _v: eras.append(era))) as manager:
            upstream = manager.pool(http_config(url, transport=transport))
            tools = await upstream.list_tools()
            result = await upstream.call_tool("get-sum", {"a": 20, "b": 22})

    assert "echo" in {tool.name for tool in tools}
    assert "42" in result.content[0].text
    assert eras == ["handshake"]


async def test_a_server_that_never_acknowledges_listen_is_usable_for_calls() -> None:
    # A 2026-07-28 server that announces tools.listChanged but never acknowledges
    # subscriptions/listen: the connection must not wait for that optional step.
    with http_fixture_server("--no-listen-ack") as url:
        async with upstream_manager() as manager:
            upstream = manager.pool(http_config(url, connect_timeout=5.0))
            first = await upstream.call_tool("echo", {"text": "one"})
            second = await upstream.request_json("tools/call", {"name": "echo", "arguments": {"text": "two"}})
            era = upstream.protocol_version

    assert first.content[0].text == "one"
    assert second["content"][0]["text"] == "two"
    assert era == "2026-07-28"
