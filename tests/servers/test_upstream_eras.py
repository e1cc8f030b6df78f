"""Which pool serves a client of each era (servers.upstream.eras), against real fixture processes over stdio."""

from __future__ import annotations

import json

import pytest
from mcp import MCPError
from mcp_types import CONNECTION_CLOSED, UNSUPPORTED_PROTOCOL_VERSION

from servers.upstream.eras import refuses_handshake
from servers.upstream.manager import upstream_manager
from servers.upstream.pool import UpstreamPool
from servers.upstream.session import SessionHooks
from tests.conftest import stdio_config

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"


async def era_of_call(pool: UpstreamPool) -> str:
    result = await pool.call_tool("whoami", {})
    version: str = json.loads(result.content[0].text)["protocol_version"]  # type: ignore[union-attr]
    return version


async def test_a_dual_era_server_gets_a_handshake_variant_for_handshake_clients_only() -> None:
    eras: list[tuple[int, str, str]] = []
    config = stdio_config(era="stateless", protocol_version=MODERN)
    async with upstream_manager(SessionHooks(on_era=lambda *args: eras.append(args))) as upstreams:
        modern = await upstreams.pool_for(config, "stateless")
        assert modern is upstreams.pool(config)
        assert await era_of_call(modern) == MODERN
        handshake = await upstreams.pool_for(config, "handshake")
        assert handshake is not modern and handshake.config.variant == "handshake"
        assert await era_of_call(handshake) == "2025-11-25"
        assert await upstreams.pool_for(config, "handshake") is handshake  # started once
        assert upstreams.running_pools(config.id) == [modern, handshake]
        assert [pool.instances()[0].label for pool in upstreams.pools()] == ["#0", "#0 (handshake)"]
    # The variant's era is never reported as the server's.
    assert all(era == "stateless" for _id, era, _version in eras)


async def test_a_handshake_era_server_keeps_one_connection() -> None:
    config = stdio_config("--legacy-only", era="handshake", protocol_version="2025-11-25")
    async with upstream_manager() as upstreams:
        pool = await upstreams.pool_for(config, "handshake")
        assert pool is upstreams.pool(config)
        assert await era_of_call(pool) == "2025-11-25"
        assert upstreams.pools() == [pool]


async def test_a_server_refusing_the_handshake_is_tried_once() -> None:
    config = stdio_config("--modern-only", era="stateless", protocol_version=MODERN)
    async with upstream_manager() as upstreams:
        primary = upstreams.pool(config)
        for _ in range(3):
            assert await upstreams.pool_for(config, "handshake") is primary
            assert await era_of_call(primary) == MODERN
        assert upstreams.pools() == [primary]
        # A new configuration version may be a different server: it is tried again (once).
        newer = stdio_config("--modern-only", era="stateless", protocol_version=MODERN, config_version=2)
        assert await upstreams.pool_for(newer, "handshake") is upstreams.pool(newer)


def test_refusals_are_answers_about_the_era_not_outages() -> None:
    refused = MCPError(UNSUPPORTED_PROTOCOL_VERSION, "only 2026-07-28")
    assert refuses_handshake(refused)
    assert refuses_handshake(BaseExceptionGroup("connect", [ExceptionGroup("inner", [refused])]))
    assert refuses_handshake(RuntimeError("Unsupported protocol version from the server: 2026-07-28"))
    assert not refuses_handshake(MCPError(CONNECTION_CLOSED, "Connection closed"))
    assert not refuses_handshake(TimeoutError("no connection within 10 s"))
