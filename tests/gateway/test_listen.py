"""2026-07-28 clients' `subscriptions/listen` streams at the hub: fed by the upstreams' changes, per token and endpoint.

`fixture` speaks 2026-07-28 upstream (the hub listens to it), `legacy` only the handshake era (it
notifies the hub's session). A stream hears the list changes of the servers its token sees
through its endpoint, and the updates of the resources it named, under the URI it named.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.subscriptions import (
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    Subscription,
    ToolsListChanged,
)

from servers import services
from tests.conftest import hub_env, run_web
from tests.gateway.conftest import Hub, register_fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.anyio, pytest.mark.slow]


@dataclass
class Listening:
    hub: Hub
    legacy_token: str  # may use `legacy` only


@pytest.fixture
def listening(transactional_db: None) -> Iterator[Listening]:
    register_fixture("fixture")
    legacy = register_fixture("legacy", "--legacy-only")
    _token, secret = services.create_token("tests")
    _token, legacy_secret = services.create_token("legacy only", [legacy.slug])
    with run_web(hub_env()) as server:
        yield Listening(Hub(server.url, secret, server), legacy_secret)


@dataclass
class Heard:
    """Every event a listen stream delivered, in order."""

    subscription: Subscription
    events: list[ServerEvent] = field(default_factory=list)

    async def wait_for(self, event: ServerEvent, timeout: float = 30) -> None:
        with anyio.fail_after(timeout):
            while event not in self.events:
                await anyio.sleep(0.05)


@asynccontextmanager
async def listening_to(client: Client, **notifications: Any) -> AsyncIterator[Heard]:
    async with client.listen(**notifications) as subscription, anyio.create_task_group() as tasks:
        heard = Heard(subscription)

        async def collect() -> None:
            async for event in subscription:
                heard.events.append(event)

        tasks.start_soon(collect)
        yield heard
        tasks.cancel_scope.cancel()


async def until_heard(
    heard: Heard, event: ServerEvent, trigger: Callable[[], Awaitable[object]], timeout: float = 60
) -> None:
    """Trigger (again, a second apart) until the stream hears `event`: across an upstream restart, a trigger
    may reach the server before it is back."""
    with anyio.fail_after(timeout):
        while event not in heard.events:
            await trigger()
            with anyio.move_on_after(1):
                await heard.wait_for(event)


@pytest.mark.parametrize(
    "path,prefix,uri",
    [("/mcp", "fixture__", "mcphub+fixture:fixture://hello"), ("/mcp/fixture/", "", "fixture://hello")],
)
async def test_a_listen_stream_hears_list_changes_and_its_resources_updates(
    listening: Listening, path: str, prefix: str, uri: str
) -> None:
    hub = listening.hub
    notifications: dict[str, Any] = {
        "tools_list_changed": True,
        "prompts_list_changed": True,
        "resources_list_changed": True,
        "resource_subscriptions": [uri],
    }
    async with (
        hub.client(path) as client,
        hub.client(path) as caller,
        listening_to(client, **notifications) as heard,
    ):
        assert heard.subscription.honored.resource_subscriptions == [uri]
        await caller.call_tool(prefix + "change_tools", {})
        await heard.wait_for(ToolsListChanged())
        await caller.call_tool(prefix + "change_prompts", {})
        await heard.wait_for(PromptsListChanged())
        await caller.call_tool(prefix + "change_resources", {})
        await heard.wait_for(ResourcesListChanged())
        await caller.call_tool(prefix + "touch", {"uri": "fixture://hello"})
        await heard.wait_for(ResourceUpdated(uri))
        # Announced once the re-listing is stored, or soon after: the lists end up current.
        with anyio.fail_after(30):
            while prefix + "extra_1" not in {tool.name for tool in (await client.list_tools()).tools}:
                await anyio.sleep(0.2)
            while prefix + "extra_prompt_1" not in {prompt.name for prompt in (await client.list_prompts()).prompts}:
                await anyio.sleep(0.2)
            while uri.replace("hello", "extra/1") not in {
                str(r.uri) for r in (await client.list_resources()).resources
            }:
                await anyio.sleep(0.2)


async def test_a_stream_hears_nothing_of_a_server_its_token_or_endpoint_does_not_see(listening: Listening) -> None:
    hub = listening.hub
    notifications = {"tools_list_changed": True, "prompts_list_changed": True}
    async with (
        hub.client("/mcp") as caller,
        hub.client("/mcp") as everything,
        hub.client("/mcp", token=listening.legacy_token) as restricted,
        hub.client("/mcp/legacy/") as one_server,
        listening_to(everything, **notifications) as all_heard,
        listening_to(
            restricted, **notifications, resource_subscriptions=["mcphub+fixture:fixture://hello"]
        ) as restricted_heard,
        listening_to(one_server, **notifications) as one_server_heard,
    ):
        assert not restricted_heard.subscription.honored.resource_subscriptions  # not a resource it may see
        await caller.call_tool("fixture__change_tools", {})
        await caller.call_tool("fixture__touch", {"uri": "fixture://hello"})
        await all_heard.wait_for(ToolsListChanged())
        # Then a change they may hear (legacy's, announced later on the same streams): it comes first.
        await caller.call_tool("legacy__change_prompts", {})
        await restricted_heard.wait_for(PromptsListChanged())
        await one_server_heard.wait_for(PromptsListChanged())
        await anyio.sleep(1)  # the fixture's re-listing, and its announcements, are done by now
    # (A change may be announced twice: when heard, and once the re-listing changed the list.)
    assert set(restricted_heard.events) == {PromptsListChanged()}
    assert set(one_server_heard.events) == {PromptsListChanged()}


@pytest.mark.parametrize("slug", ["fixture", "legacy"])
async def test_a_resource_subscription_still_delivers_after_the_upstream_restarts(
    listening: Listening, slug: str
) -> None:
    hub = listening.hub
    path = f"/mcp/{slug}/"
    async with (
        hub.client(path) as client,
        hub.client(path) as caller,
        listening_to(client, resource_subscriptions=["fixture://hello"]) as heard,
    ):

        async def touch() -> None:
            await caller.call_tool("touch", {"uri": "fixture://hello"})

        await until_heard(heard, ResourceUpdated("fixture://hello"), touch)
        before = await upstream_pid(caller)
        await caller.call_tool("crash", {})  # the upstream process exits; the hub starts a new one
        heard.events.clear()
        await until_heard(heard, ResourceUpdated("fixture://hello"), touch)
        assert await upstream_pid(caller) != before  # heard from the new process: subscribed there too


async def upstream_pid(client: Client) -> int:
    result = await client.call_tool("pid", {})
    assert result.structured_content is not None, result
    pid: int = result.structured_content["pid"]
    return pid
