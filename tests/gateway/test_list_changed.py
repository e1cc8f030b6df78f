"""An upstream's notifications/tools/list_changed reaches clients connected to /mcp."""

from __future__ import annotations

import anyio
import mcp_types as types
import pytest

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
        tools = {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("fixture__extra_1", {"x": 1})

    assert "fixture__extra_1" in tools
    assert result.is_error is not True
