"""Optional start-up steps never gate an upstream connection (issue 15: the hub once could not use such a server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servers import services
from servers.discovery import discover
from servers.models import McpServer
from tests.conftest import http_fixture_server, hub_env, run_web
from tests.gateway.conftest import Hub

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def unacknowledging_hub(transactional_db: None) -> Iterator[Hub]:
    """`mute`: a 2026-07-28 server announcing tools.listChanged that never acknowledges subscriptions/listen."""
    with http_fixture_server("--no-listen-ack") as url:
        server = McpServer.objects.create(
            name="mute", slug="mute", transport="streamable_http", url=url, connect_timeout=5
        )
        assert discover(server) is not None, McpServer.objects.get(pk=server.pk).discovery_error
        _token, secret = services.create_token("tests")
        with run_web(hub_env()) as live:
            yield Hub(live.url, secret, live)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_server_that_never_acknowledges_listen_is_usable_through_the_hub(
    unacknowledging_hub: Hub, mode: str
) -> None:
    for path, name in (("/mcp/mute/", "echo"), ("/mcp", "mute__echo")):
        async with unacknowledging_hub.client(path, mode=mode) as client:
            for text in ("one", "two", "three"):
                result = await client.call_tool(name, {"text": text})
                assert result.is_error is not True, result
                assert result.content[0].text == text
