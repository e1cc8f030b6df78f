"""An upstream's list changes reach clients connected to /mcp (2026-07-28 listen streams: test_listen.py)."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client

from servers.conf import servers_conf
from tests.gateway.conftest import Hub

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_upstream_list_changed_reaches_the_client_and_the_new_tool_is_callable(hub: Hub) -> None:
    changed = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    # Handshake era: notifications arrive on the session's GET stream.
    async with hub.client(mode="legacy", message_handler=on_message) as client:
        await client.list_tools()
        await client.call_tool("fixture__change_tools", {})
        with anyio.fail_after(30):
            await changed.wait()
            # Announced once re-listed, or at most ANNOUNCE_WITHIN later (then again when listed).
            while "fixture__extra_1" not in {tool.name for tool in (await client.list_tools()).tools}:
                await anyio.sleep(0.2)
        result = await client.call_tool("fixture__extra_1", {"x": 1})

    assert result.is_error is not True


async def test_a_prompt_list_change_reaches_a_handshake_era_client(hub: Hub) -> None:
    changed = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.PromptListChangedNotification):
            changed.set()

    async with hub.client(mode="legacy", message_handler=on_message) as client:
        await client.call_tool("fixture__change_prompts", {})
        with anyio.fail_after(30):
            await changed.wait()
            while "fixture__extra_prompt_1" not in {prompt.name for prompt in (await client.list_prompts()).prompts}:
                await anyio.sleep(0.2)


async def upstream_listings(client: Client) -> dict[str, Any]:
    """When the fixture upstream received each tools/list, and the most it had in flight at once."""
    return (await client.call_tool("fixture__listings", {})).structured_content or {}


async def test_a_burst_of_changes_is_relisted_one_pass_at_a_time_at_least_the_interval_apart(hub: Hub) -> None:
    interval = servers_conf().relist_min_interval  # the hub runs with the same default
    added = {f"fixture__extra_{n}" for n in range(1, 5)}

    async with hub.client() as client:
        # The hub's session lists once to check the first result of a tool it has not listed: not a re-listing.
        await upstream_listings(client)
        before = len((await upstream_listings(client))["at"])
        # Four changes over 1.5 s (less than the interval), each announced.
        await client.call_tool("fixture__change_tools", {"count": 4, "every": 0.5})
        with anyio.fail_after(60):  # stored, and in the snapshot clients list
            while not added <= {tool.name for tool in (await client.list_tools()).tools}:
                await anyio.sleep(0.2)
        seen = await upstream_listings(client)

    relistings = seen["at"][before:]
    gaps = [later - earlier for earlier, later in itertools.pairwise(relistings)]
    print(f"\n4 announcements in 1.5 s: {len(relistings)} re-listings, gaps {[round(g, 2) for g in gaps]} s")
    assert seen["max_in_flight"] == 1
    assert 1 <= len(relistings) <= 2  # the first announcement's pass, then one for the rest
    assert all(gap >= interval - 0.25 for gap in gaps)
