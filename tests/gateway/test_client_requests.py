"""Server-to-client requests (sampling, elicitation, roots) relayed through the hub to the client that caused them.

The upstreams are handshake-era (the fixture with --legacy-only, and server-everything from npm):
they ask on the call's stream, and the hub must ask the downstream client that made the call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError

from servers import services
from servers.discovery import discover
from servers.models import McpServer
from servers.upstream.requester import SERVER_META_KEY
from tests.conftest import EVERYTHING, hub_env, run_web
from tests.gateway.conftest import Hub, register_fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def hub(transactional_db: None) -> Iterator[Hub]:
    """`legacy` and `quick` (the fixture, handshake era only; quick's calls time out after 2 s), `modern` (the
    fixture, 2026-07-28 only) and `everything` (server-everything over stdio)."""
    register_fixture("legacy", "--legacy-only")
    register_fixture("quick", "--legacy-only", call_timeout=2)
    # 2026-only: its handshake-era clients are served on a 2026 connection (a dual-era server gets a handshake one).
    register_fixture("modern", "--modern-only")
    everything = McpServer.objects.create(name="everything", slug="everything", command=str(EVERYTHING), args=["stdio"])
    discover(everything)
    _token, secret = services.create_token("tests")
    with run_web(hub_env()) as server:
        yield Hub(server.url, secret, server)


class Answers:
    """A downstream client's callbacks, recording what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Any]] = []

    async def sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        self.asked.append(("sampling", params))
        prompt = params.messages[0].content
        text = prompt.text if isinstance(prompt, types.TextContent) else "?"
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=f"sampled: {text}"), model="test-model"
        )

    async def elicitation(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append(("elicitation", params))
        if isinstance(params, types.ElicitRequestURLParams):
            return types.ElicitResult(action="accept")
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async def roots(self, context: ClientRequestContext) -> types.ListRootsResult:
        self.asked.append(("roots", None))
        return types.ListRootsResult(roots=[types.Root(uri="file:///work/project", name="project")])

    def options(self) -> dict[str, Any]:
        return {
            "sampling_callback": self.sampling,
            "sampling_capabilities": types.SamplingCapability(tools=types.SamplingToolsCapability()),
            "elicitation_callback": self.elicitation,
            "list_roots_callback": self.roots,
        }


def _answer(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    content = result.content[0]
    assert isinstance(content, types.TextContent)
    data: dict[str, Any] = json.loads(content.text)
    return data


@pytest.mark.parametrize("path,tool", [("/mcp", "legacy__sample"), ("/mcp/legacy/", "sample")])
async def test_sampling_reaches_the_calling_client(hub: Hub, path: str, tool: str) -> None:
    answers = Answers()
    async with hub.client(path, mode="legacy", **answers.options()) as client:
        result = await client.call_tool(tool, {"prompt": "hello"})
    assert _answer(result)["content"]["text"] == "sampled: hello"
    [(kind, params)] = answers.asked
    assert kind == "sampling"
    # On /mcp the client is told which server asks; on /mcp/<slug>/ it knows already.
    assert (params.meta or {}).get(SERVER_META_KEY) == ("legacy" if path == "/mcp" else None)


async def test_sampling_with_tools_is_relayed(hub: Hub) -> None:
    answers = Answers()
    async with hub.client("/mcp/legacy/", mode="legacy", **answers.options()) as client:
        result = await client.call_tool("sample", {"prompt": "use a tool", "tools": True})
    assert _answer(result)["content"]["text"] == "sampled: use a tool"
    [(_kind, params)] = answers.asked
    assert [tool.name for tool in params.tools] == ["lookup"]


@pytest.mark.parametrize("path,tool", [("/mcp", "legacy__input_form"), ("/mcp/legacy/", "input_form")])
async def test_form_elicitation_reaches_the_calling_client(hub: Hub, path: str, tool: str) -> None:
    answers = Answers()
    async with hub.client(path, mode="legacy", **answers.options()) as client:
        result = await client.call_tool(tool, {"message": "Your name?"})
    assert _answer(result) == {"action": "accept", "content": {"name": "Ada"}}
    [(_kind, params)] = answers.asked
    assert params.message == ("[legacy] Your name?" if path == "/mcp" else "Your name?")


async def test_url_elicitation_and_its_completion_are_relayed(hub: Hub) -> None:
    answers = Answers()
    completed: list[str] = []

    async def notices(message: object) -> None:
        if isinstance(message, types.ElicitCompleteNotification):
            completed.append(message.params.elicitation_id)

    async with hub.client("/mcp/legacy/", mode="legacy", message_handler=notices, **answers.options()) as client:
        result = await client.call_tool("input_form", {"message": "Sign in", "url": "https://example.com/auth"})
        with anyio.fail_after(30):
            while not completed:
                await anyio.sleep(0.05)
    assert _answer(result) == {"action": "accept"}
    [(_kind, params)] = answers.asked
    assert isinstance(params, types.ElicitRequestURLParams)
    assert params.url == "https://example.com/auth"
    assert completed == ["fixture-1"]


async def test_roots_are_listed_by_the_calling_client_and_changes_announced(hub: Hub) -> None:
    answers = Answers()
    async with hub.client("/mcp", mode="legacy", **answers.options()) as client:
        result = await client.call_tool("legacy__roots", {})
        assert _answer(result) == {"roots": [{"uri": "file:///work/project", "name": "project"}], "changes": 0}
        await client.session.send_notification(types.RootsListChangedNotification())
        with anyio.fail_after(30):
            while _answer(await client.call_tool("legacy__roots", {}))["changes"] != 1:
                await anyio.sleep(0.1)


async def test_a_client_that_never_answers_costs_the_call_timeout_not_a_hang(hub: Hub) -> None:
    async def never(context: ClientRequestContext, params: types.CreateMessageRequestParams) -> types.ErrorData:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async with hub.client("/mcp/quick/", mode="legacy", sampling_callback=never) as client:
        with anyio.fail_after(30):
            result = await client.call_tool("sample", {"prompt": "hello"})
        assert result.is_error
        assert "no answer within 2 s" in str(result.content[0])
        assert not (await client.call_tool("echo", {"text": "still here"})).is_error


async def test_two_clients_each_answer_their_own_calls(hub: Hub) -> None:
    first, second = Answers(), Answers()
    async with (
        hub.client("/mcp/legacy/", mode="legacy", **first.options()) as one,
        hub.client("/mcp/legacy/", mode="legacy", **second.options()) as two,
    ):
        await one.call_tool("sample", {"prompt": "from one"})
        await two.call_tool("sample", {"prompt": "from two"})
    assert [params.messages[0].content.text for _kind, params in first.asked] == ["from one"]
    assert [params.messages[0].content.text for _kind, params in second.asked] == ["from two"]


@pytest.mark.parametrize("server,era", [("legacy", "2025-11-25"), ("modern", "2026-07-28")])
async def test_each_upstream_era_asks_the_handshake_client(hub: Hub, server: str, era: str) -> None:
    """A 2026-07-28 upstream's input_required question is put to the handshake-era client as a request."""
    answers = Answers()
    async with hub.client(f"/mcp/{server}/", mode="legacy", **answers.options()) as client:
        result = await client.call_tool("query_name", {})
    assert not result.is_error, result.content
    assert result.content[0] == types.TextContent(type="text", text=f"name: Ada ({era})")
    assert [kind for kind, _params in answers.asked] == ["elicitation"]


async def test_a_client_without_the_capability_gets_a_clear_error(hub: Hub) -> None:
    async with hub.client("/mcp/legacy/", mode="legacy") as client:
        with pytest.raises(MCPError, match="no connected client can answer sampling/createMessage"):
            await client.call_tool("sample", {"prompt": "hello"})


async def test_server_everything_offers_and_relays_sampling_and_elicitation(hub: Hub) -> None:
    answers = Answers()
    async with hub.client("/mcp/everything/", mode="legacy", **answers.options()) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"trigger-sampling-request", "trigger-elicitation-request", "get-roots-list"} <= names, names
        result = await client.call_tool("trigger-sampling-request", {"prompt": "hi there", "maxTokens": 20})
        assert not result.is_error, result.content
        text = json.dumps(result.model_dump(mode="json"))
        assert "test-model" in text and "hi there" in text, text
    assert answers.asked[0][0] == "sampling"


async def test_a_request_is_never_put_to_another_identitys_client(hub: Hub) -> None:
    """A handshake-era upstream does not say which call it asks for: the hub must not guess across tokens.

    Token B's 2026-07-28 call makes the upstream ask for sampling while token A's session, which could
    answer, is open: A is never asked; B, the only caller in flight but without the sampling capability,
    is not asked either, and its call fails with the reason.
    """
    bystander = Answers()
    _token, other = await anyio.to_thread.run_sync(lambda: services.create_token("other"))
    async with hub.client("/mcp/legacy/", mode="legacy", **bystander.options()) as session_a:
        await session_a.list_tools()
        async with hub.client("/mcp/legacy/", token=other) as client_b:
            with anyio.fail_after(60):
                try:
                    result = await client_b.call_tool("sample", {"prompt": "B's secret"})
                    failure = str(result.content) if result.is_error else ""
                except MCPError as exc:
                    failure = exc.error.message
        assert "no connected client can answer sampling/createMessage" in failure, failure
        await session_a.call_tool("echo", {"text": "A still works"})
    assert bystander.asked == []
