"""The upstream era follows the client's: a dual-era server serves handshake-era clients on a handshake connection.

Servers: `dual` (the fixture over HTTP, both eras: detected as 2026-07-28), `modern` (over HTTP,
refuses `initialize`), `local` (the fixture over stdio, both eras, idle timeout 3 s).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import mcp_types as types
import pytest

from servers import services
from servers.discovery import discover
from servers.gateway import instances
from servers.models import McpServer
from tests.conftest import http_fixture_server, hub_env, run_web, wait_for
from tests.gateway.conftest import Hub, register_fixture
from tests.gateway.test_client_requests import Answers
from tests.gateway.test_subscriptions import Updates, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.anyio, pytest.mark.slow]

HANDSHAKE = "2025-11-25"
MODERN = "2026-07-28"


@pytest.fixture(autouse=True)
def orm_in_async_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the tests read a few rows between calls


@pytest.fixture
def hub(transactional_db: None) -> Iterator[Hub]:
    with http_fixture_server() as dual_url, http_fixture_server("--modern-only") as modern_url:
        for slug, url in (("dual", dual_url), ("modern", modern_url)):
            server = McpServer.objects.create(name=slug, slug=slug, transport="streamable_http", url=url)
            assert discover(server) is not None, McpServer.objects.get(pk=server.pk).discovery_error
        register_fixture("local", idle_timeout=3)
        assert set(McpServer.objects.values_list("era", flat=True)) == {"stateless"}
        _token, secret = services.create_token("tests")
        with run_web(hub_env()) as live:
            yield Hub(live.url, secret, live)


def _data(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    content = result.content[0]
    assert isinstance(content, types.TextContent)
    data: dict[str, Any] = json.loads(content.text)
    return data


async def _era_of_call(hub: Hub, path: str, tool: str, mode: str) -> str:
    async with hub.client(path, mode=mode) as client:
        version: str = _data(await client.call_tool(tool, {}))["protocol_version"]
    return version


@pytest.mark.parametrize("path,prefix", [("/mcp/dual/", ""), ("/mcp", "dual__"), ("/mcp/local/", "")])
async def test_handshake_client_of_a_dual_era_server_is_asked_on_the_calls_stream(
    hub: Hub, path: str, prefix: str
) -> None:
    answers = Answers()
    async with hub.client(path, mode="legacy", **answers.options()) as client:
        assert _data(await client.call_tool(prefix + "whoami", {}))["protocol_version"] == HANDSHAKE
        sampled = _data(await client.call_tool(prefix + "sample", {"prompt": "hello"}))
        elicited = _data(await client.call_tool(prefix + "input_form", {"message": "Your name?"}))
    assert sampled["content"]["text"] == "sampled: hello"
    assert elicited == {"action": "accept", "content": {"name": "Ada"}}
    assert [kind for kind, _params in answers.asked] == ["sampling", "elicitation"]


async def test_each_era_keeps_its_own_connection(hub: Hub) -> None:
    for path, tool in (("/mcp/dual/", "whoami"), ("/mcp", "dual__whoami"), ("/mcp/local/", "whoami")):
        assert await _era_of_call(hub, path, tool, "legacy") == HANDSHAKE
        assert await _era_of_call(hub, path, tool, "auto") == MODERN
    # The variant's era is not the server's: the recorded era stays 2026-07-28.
    assert set(McpServer.objects.values_list("era", flat=True)) == {"stateless"}
    # Each server's variant shows up as an instance of its own, once.
    ids = dict(McpServer.objects.values_list("slug", "id"))

    def labels() -> dict[str, list[str]]:
        rows = instances.all_instances()
        return {slug: sorted(row["label"] for row in rows.get(ids[slug], [])) for slug in ("dual", "local")}

    wait_for(lambda: len(labels()["dual"]) == 2 and len(labels()["local"]) == 2, timeout=30, what="instance rows")
    dual = McpServer.objects.get(slug="dual")
    assert labels() == {"dual": sorted([dual.url, f"{dual.url} (handshake)"]), "local": ["#0", "#0 (handshake)"]}


async def test_resources_subscribe_through_the_handshake_connection(hub: Hub) -> None:
    subscriber = Updates()
    async with (
        hub.client("/mcp/dual/", mode="legacy", message_handler=subscriber) as client,
        hub.client("/mcp/dual/", mode="legacy") as other,
    ):
        await client.subscribe_resource("fixture://hello")
        assert _data(await other.call_tool("touch", {"uri": "fixture://hello"}))["subscribed"] == ["fixture://hello"]
        await wait_until(lambda: subscriber.uris == ["fixture://hello"])
        await client.unsubscribe_resource("fixture://hello")
        assert _data(await other.call_tool("touch", {"uri": "fixture://hello"}))["subscribed"] == []


async def test_a_handshake_era_client_subscribes_to_a_2026_only_server(hub: Hub) -> None:
    # The server takes subscriptions only on a listen stream: the hub's carries the resource.
    subscriber = Updates()
    async with (
        hub.client("/mcp/modern/", mode="legacy", message_handler=subscriber) as client,
        hub.client("/mcp/modern/", mode="legacy") as other,
    ):
        await client.subscribe_resource("fixture://hello")
        with anyio.fail_after(30):  # the hub's listen stream is opened again with it, right after the answer
            while "fixture://hello" not in subscriber.uris:
                await other.call_tool("touch", {"uri": "fixture://hello"})
                await anyio.sleep(0.5)
        await client.unsubscribe_resource("fixture://hello")
        with anyio.fail_after(30):  # and again without it: touches are no longer heard
            while subscriber.uris:
                subscriber.uris.clear()
                await other.call_tool("touch", {"uri": "fixture://hello"})
                await anyio.sleep(1)


async def test_a_server_refusing_the_handshake_serves_handshake_clients_on_its_2026_connection(hub: Hub) -> None:
    for _session in range(3):
        async with hub.client("/mcp/modern/", mode="legacy") as client:
            for _call in range(2):
                assert _data(await client.call_tool("whoami", {}))["protocol_version"] == MODERN
                assert _data(await client.call_tool("add", {"a": 2, "b": 3})) == 5
    # One refused connect, remembered: not one per request or per session.
    log = hub.server.log.read_text()
    assert log.count("upstream modern refuses the handshake era") == 1, log


async def test_the_stdio_variant_stops_when_idle(hub: Hub) -> None:
    assert await _era_of_call(hub, "/mcp/local/", "whoami", "legacy") == HANDSHAKE
    server_id = McpServer.objects.get(slug="local").pk

    def handshake_row() -> dict[str, Any] | None:
        rows = instances.all_instances().get(server_id, [])
        return next((row for row in rows if row["label"].endswith("(handshake)")), None)

    wait_for(lambda: (row := handshake_row()) is not None and row["state"] == "stopped", timeout=60, what="idle stop")
    # The next handshake-era request starts it again.
    assert await _era_of_call(hub, "/mcp/local/", "whoami", "legacy") == HANDSHAKE
