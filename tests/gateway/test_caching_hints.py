"""Caching hints (2026-07-28, SEP-2549) through the hub: an upstream's passed on, the hub's own on its lists."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from logs.models import RequestLog
from servers import services
from servers.discovery import discover
from servers.models import McpServer
from tests.conftest import http_fixture_server, hub_env, run_web, wait_for
from tests.gateway.conftest import Hub, register_fixture, rpc

pytestmark = [pytest.mark.slow]


@pytest.fixture
def hub(transactional_db: None) -> Iterator[Hub]:
    """`web` (HTTP, relayed), `fixture` (stdio), `old` (stdio, handshake era only)."""
    with http_fixture_server() as url:
        discover(McpServer.objects.create(name="web", slug="web", transport="streamable_http", url=url))
        register_fixture("fixture")
        register_fixture("old", "--legacy-only")
        _token, secret = services.create_token("tests")
        with run_web(hub_env()) as live:
            yield Hub(live.url, secret, live)


@pytest.mark.parametrize(
    ("path", "prefix"), [("/mcp/web/", ""), ("/mcp/fixture/", ""), ("/mcp", "mcphub+web:"), ("/mcp", "mcphub+fixture:")]
)
def test_an_upstream_resource_reads_hints_pass_on_unchanged(hub: Hub, path: str, prefix: str) -> None:
    # A client declaring input capabilities takes the pass-through; one declaring none the SDK client's path.
    for capabilities in (None, {}):
        public = rpc(hub, path, "resources/read", {"uri": prefix + "fixture://public"}, capabilities)["result"]
        assert (public["ttlMs"], public["cacheScope"]) == (60000, "public")
        private = rpc(hub, path, "resources/read", {"uri": prefix + "fixture://private"}, capabilities)["result"]
        assert (private["ttlMs"], private["cacheScope"]) == (30000, "private")
        assert private["contents"][0]["uri"] == prefix + "fixture://private"


def test_a_read_without_hints_gets_the_safe_default(hub: Hub) -> None:
    """A handshake-era upstream knows no hints: immediately stale, and private."""
    result = rpc(hub, "/mcp/old/", "resources/read", {"uri": "fixture://hello"})["result"]
    assert (result["ttlMs"], result["cacheScope"]) == (0, "private")
    assert result["contents"][0]["text"] == "hello from the fixture resource"


@pytest.mark.parametrize("path", ["/mcp", "/mcp/web/"])
def test_the_hubs_own_lists_carry_private_hints(hub: Hub, path: str) -> None:
    """The hub's lists depend on the token (the servers it may see): private, never shared between tokens."""
    for method in ("tools/list", "prompts/list", "resources/list", "server/discover"):
        result = rpc(hub, path, method, {})["result"]
        assert isinstance(result["ttlMs"], int) and result["ttlMs"] >= 0, method
        assert result["cacheScope"] == "private", method


def test_a_private_result_is_fetched_for_each_token(hub: Hub) -> None:
    """The hub caches no result: each token's read of a private resource reaches the upstream."""
    _other, other_secret = services.create_token("other")
    for token in (hub.token, other_secret):
        result = rpc(hub, "/mcp/web/", "resources/read", {"uri": "fixture://private"}, token=token)["result"]
        assert result["cacheScope"] == "private"
    wait_for(
        lambda: RequestLog.objects.filter(tool="resource:fixture://private").values("token_id").distinct().count() == 2,
        what="one upstream read per token",
    )
