"""/mcp end to end: the SDK client over loopback HTTP, through the web process, to real upstream processes."""

from __future__ import annotations

import anyio
import pytest
from mcp import MCPError

from tests.gateway.conftest import Hub

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.mark.parametrize("mode", ["auto", "legacy"], ids=["2026-07-28", "handshake"])
async def test_list_and_call_namespaced_tools_in_both_eras(hub: Hub, mode: str) -> None:
    async with hub.client(mode=mode) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("fixture__add", {"a": 40, "b": 2})
        version = client.protocol_version

    assert {"fixture__echo", "fixture__add", "fixture__slow", "quick__echo"} <= tools
    assert result.content[0].text == "42"
    assert (version == "2026-07-28") == (mode == "auto")


async def test_per_server_endpoint_uses_original_names(hub: Hub) -> None:
    async with hub.client("/mcp/fixture/") as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("echo", {"text": "direct"})

    assert "echo" in tools
    assert not any("__" in name for name in tools)
    assert result.content[0].text == "direct"


async def test_unknown_tool_is_invalid_params(hub: Hub) -> None:
    async with hub.client() as client:
        with pytest.raises(MCPError) as error:
            await client.call_tool("fixture__nope", {})

    assert error.value.code == -32602


async def test_progress_is_forwarded(hub: Hub) -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with hub.client(mode="legacy") as client:
        result = await client.call_tool("fixture__slow", {"seconds": 0.5}, progress_callback=on_progress)

    assert result.is_error is not True
    assert len(seen) >= 2


async def test_timeout_is_a_tool_error_naming_server_and_limit(hub: Hub) -> None:
    async with hub.client() as client:
        result = await client.call_tool("quick__slow", {"seconds": 20})
        after = await client.call_tool("quick__echo", {"text": "alive"})

    assert result.is_error is True
    assert "quick" in result.content[0].text
    assert "2 s" in result.content[0].text
    assert after.content[0].text == "alive"


async def test_crash_mid_call_is_a_tool_error_then_the_server_restarts(hub: Hub) -> None:
    async with hub.client() as client:
        crashed = await client.call_tool("fixture__crash", {})
        with anyio.fail_after(60):
            while True:
                result = await client.call_tool("fixture__echo", {"text": "back"})
                if not result.is_error:
                    break
                await anyio.sleep(0.5)

    assert crashed.is_error is True
    assert "fixture" in crashed.content[0].text
    assert result.content[0].text == "back"


async def test_cancelled_call_leaves_the_session_usable(hub: Hub) -> None:
    async with hub.client(mode="legacy") as client:
        with anyio.move_on_after(1):
            await client.call_tool("fixture__slow", {"seconds": 20})
        result = await client.call_tool("fixture__echo", {"text": "next"})

    assert result.content[0].text == "next"


async def test_five_megabyte_result_passes_through(hub: Hub) -> None:
    async with hub.client(mode="legacy") as client:
        result = await client.call_tool("fixture__big", {"size_bytes": 5_000_000})

    assert len(result.content[0].text) == 5_000_000


async def test_resources_and_prompts_are_namespaced(hub: Hub) -> None:
    async with hub.client() as client:
        resources = (await client.list_resources()).resources
        uris = [str(resource.uri) for resource in resources]
        content = await client.read_resource("mcphub+fixture:fixture://hello")
        prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
        prompt = await client.get_prompt("fixture__greet", {"name": "Ada"})

    assert "mcphub+fixture:fixture://hello" in uris
    assert "hello from the fixture resource" in content.contents[0].text
    assert "fixture__greet" in prompts
    assert "Ada" in prompt.messages[0].content.text
