"""resources/subscribe through the hub: forwarded upstream, updates routed to the subscribed sessions only."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import anyio
import mcp_types as types
import pytest

from servers import services
from tests.conftest import hub_env, run_web
from tests.gateway.conftest import Hub, register_fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def hub(transactional_db: None) -> Iterator[Hub]:
    register_fixture("legacy", "--legacy-only")
    _token, secret = services.create_token("tests")
    with run_web(hub_env()) as server:
        yield Hub(server.url, secret, server)


class Updates:
    def __init__(self) -> None:
        self.uris: list[str] = []

    async def __call__(self, message: object) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.uris.append(str(message.params.uri))


async def wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.05)


def _subscribed(result: types.CallToolResult) -> list[str]:
    content = result.content[0]
    assert isinstance(content, types.TextContent)
    subscribed: list[str] = json.loads(content.text)["subscribed"]
    return subscribed


@pytest.mark.parametrize("path,uri", [("/mcp", "mcphub+legacy:fixture://hello"), ("/mcp/legacy/", "fixture://hello")])
async def test_updates_reach_the_subscriber_only_until_it_unsubscribes(hub: Hub, path: str, uri: str) -> None:
    touch = "legacy__touch" if path == "/mcp" else "touch"
    subscriber, bystander = Updates(), Updates()
    async with (
        hub.client(path, mode="legacy", message_handler=subscriber) as client,
        hub.client(path, mode="legacy", message_handler=bystander) as other,
    ):
        resources = client.server_capabilities.resources
        assert resources is not None and resources.subscribe
        await client.subscribe_resource(uri)
        assert _subscribed(await other.call_tool(touch, {"uri": "fixture://hello"})) == ["fixture://hello"]
        await wait_until(lambda: subscriber.uris == [uri])
        await client.unsubscribe_resource(uri)
        assert _subscribed(await other.call_tool(touch, {"uri": "fixture://hello"})) == []
        await anyio.sleep(0.5)
    assert subscriber.uris == [uri]
    assert bystander.uris == []


async def test_subscribing_to_an_unknown_server_is_invalid_params(hub: Hub) -> None:
    async with hub.client("/mcp", mode="legacy") as client:
        with pytest.raises(Exception, match="Unknown resource"):
            await client.subscribe_resource("mcphub+nope:fixture://hello")


async def test_a_subscription_is_renewed_after_the_server_restarts(hub: Hub) -> None:
    subscriber = Updates()
    async with (
        hub.client("/mcp/legacy/", mode="legacy", message_handler=subscriber) as client,
        hub.client("/mcp/legacy/", mode="legacy") as other,
    ):
        await client.subscribe_resource("fixture://hello")
        await other.call_tool("crash", {})  # the server process exits; the hub starts a new one
        with anyio.fail_after(60):
            while True:  # the new process says whom it has subscribed
                result = await other.call_tool("touch", {"uri": "fixture://hello"})
                if not result.is_error and _subscribed(result) == ["fixture://hello"]:
                    break
                await anyio.sleep(0.5)
        await wait_until(lambda: "fixture://hello" in subscriber.uris)
