"""A handshake-era upstream's questions during a 2026-07-28 client's request, put to that client as
`input_required` rounds (servers/gateway/held_calls.py).

The upstreams speak only the handshake era (the fixture with --legacy-only, server-everything over
stdio): they ask on the call's stream, and the 2026-07-28 client, which has no back-channel, answers
each question by retrying its request. The clients here are the official SDK's, in the 2026-07-28 era
(its input_required driver answers through the callbacks), or raw requests where a test looks at a round.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from servers import services
from servers.discovery import discover
from servers.gateway import instances
from servers.models import McpServer
from servers.upstream.requester import SERVER_META_KEY
from tests.conftest import EVERYTHING, hub_env, run_web, wait_for
from tests.gateway.conftest import Hub, elicited, register_fixture, rpc
from tests.gateway.test_client_requests import Answers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

MAX_HELD = 3


@pytest.fixture
def hub(transactional_db: None) -> Iterator[Hub]:
    """`legacy` and `quick` (the fixture, handshake era only; quick's calls time out after 12 s, long enough
    to be seen in the instance rows, published every 5 s) and `everything` (server-everything over stdio);
    at most MAX_HELD held calls per token."""
    register_fixture("legacy", "--legacy-only")
    register_fixture("quick", "--legacy-only", call_timeout=12)
    everything = McpServer.objects.create(name="everything", slug="everything", command=str(EVERYTHING), args=["stdio"])
    discover(everything)
    _token, secret = services.create_token("tests")
    with run_web(hub_env(MCPHUB_MAX_HELD_CALLS=str(MAX_HELD))) as server:
        yield Hub(server.url, secret, server)


def _text(result: types.CallToolResult) -> str:
    assert not result.is_error, result.content
    return " ".join(content.text for content in result.content if isinstance(content, types.TextContent))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "tool", "kind", "expected"),
    [
        ("/mcp/legacy/", "input_form", "elicitation", '"name": "Ada"'),
        ("/mcp", "legacy__input_form", "elicitation", '"name": "Ada"'),
        ("/mcp/legacy/", "sample", "sampling", "sampled: hello"),
        ("/mcp/legacy/", "roots", "roots", "file:///work/project"),
    ],
)
async def test_a_handshake_era_question_reaches_the_2026_client_as_a_round(
    hub: Hub, path: str, tool: str, kind: str, expected: str
) -> None:
    answers = Answers()
    async with hub.client(path, **answers.options()) as client:
        assert client.protocol_version == "2026-07-28"
        result = await client.call_tool(tool, {"prompt": "hello", "message": "Your name?"})
    assert expected in _text(result)
    [(asked, params)] = answers.asked
    assert asked == kind
    if kind == "elicitation":
        # On /mcp the client is told which server asks, as a handshake-era client is.
        assert params.message == ("[legacy] Your name?" if path == "/mcp" else "Your name?")
        assert (params.meta or {}).get(SERVER_META_KEY) == ("legacy" if path == "/mcp" else None)


@pytest.mark.anyio
async def test_two_questions_of_one_call_are_two_rounds_and_prompts_and_reads_take_rounds_too(hub: Hub) -> None:
    answers = Answers()
    given = {"name": "Ada", "color": "blue", "topic": "owls", "word": "hoot"}

    async def elicitation(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        answers.asked.append(("elicitation", params))
        assert isinstance(params, types.ElicitRequestFormParams)
        [field] = params.requested_schema["properties"]
        return types.ElicitResult(action="accept", content={field: given[field]})

    async with hub.client("/mcp/legacy/", elicitation_callback=elicitation) as client:
        result = await client.call_tool("rounds", {})
        assert _text(result) == "Ada likes blue"
        prompt = await client.get_prompt("rounds_prompt")
        assert prompt.messages[0].content == types.TextContent(type="text", text="Tell me about owls")
        read = await client.read_resource("fixture://rounds")
        assert read.contents == [types.TextResourceContents(uri="fixture://rounds", text="you said hoot")]
    assert [params.message for _kind, params in answers.asked] == [
        "Your name?",
        "Your favourite colour?",
        "Which topic?",
        "Which word?",
    ]


def test_each_round_has_a_new_opaque_state_and_a_used_or_tampered_one_is_refused(hub: Hub) -> None:
    first = rpc(hub, "/mcp/legacy/", "tools/call", {"name": "rounds", "arguments": {}})["result"]
    assert first["resultType"] == "input_required"
    [(key, question)] = first["inputRequests"].items()
    assert key == "q1"
    assert question["method"] == "elicitation/create" and question["params"]["message"] == "Your name?"
    state = first["requestState"]
    retry = {"name": "rounds", "arguments": {}, "inputResponses": elicited(key, "name", "Ada")}

    tampered = rpc(hub, "/mcp/legacy/", "tools/call", {**retry, "requestState": state[:-2] + "xx"})
    assert tampered["error"]["code"] == -32602
    assert tampered["error"]["message"] == "Invalid or expired requestState"

    second = rpc(hub, "/mcp/legacy/", "tools/call", {**retry, "requestState": state})["result"]
    assert second["resultType"] == "input_required" and second["requestState"] != state
    [(key2, question2)] = second["inputRequests"].items()
    assert key2 == "q2"
    assert question2["params"]["message"] == "Your favourite colour?"

    replayed = rpc(hub, "/mcp/legacy/", "tools/call", {**retry, "requestState": state})
    assert replayed["error"]["code"] == -32602
    assert "no longer pending" in replayed["error"]["message"], replayed

    done = rpc(
        hub,
        "/mcp/legacy/",
        "tools/call",
        {
            "name": "rounds",
            "arguments": {},
            "inputResponses": elicited(key2, "color", "red"),
            "requestState": second["requestState"],
        },
    )["result"]
    assert done["content"][0]["text"] == "Ada likes red"


def _in_flight(slug: str) -> int:
    server = McpServer.objects.get(slug=slug)
    return sum(row["in_flight"] for row in instances.all_instances().get(server.id, []))


def test_an_unanswered_round_expires_and_the_upstream_call_ends(hub: Hub) -> None:
    first = rpc(hub, "/mcp/quick/", "tools/call", {"name": "rounds", "arguments": {}})["result"]
    assert first["resultType"] == "input_required"
    # The call is held upstream while the client has the question, then the call timeout (12 s) ends it.
    wait_for(lambda: _in_flight("quick") == 1, timeout=60, what="the held call in quick's instance rows")
    wait_for(lambda: _in_flight("quick") == 0, timeout=60, what="the held call to end")
    [key] = first["inputRequests"]
    late = rpc(
        hub,
        "/mcp/quick/",
        "tools/call",
        {
            "name": "rounds",
            "arguments": {},
            "inputResponses": elicited(key, "name", "Ada"),
            "requestState": first["requestState"],
        },
    )
    assert late["error"]["code"] == -32602
    assert "no longer pending" in late["error"]["message"], late
    # The server is free again.
    assert rpc(hub, "/mcp/quick/", "tools/call", {"name": "echo", "arguments": {"text": "hi"}})["result"]["content"]


def test_held_calls_per_token_are_bounded(hub: Hub) -> None:
    firsts = [
        rpc(hub, "/mcp/legacy/", "tools/call", {"name": "rounds", "arguments": {}})["result"] for _ in range(MAX_HELD)
    ]
    assert all(first["resultType"] == "input_required" for first in firsts)
    over = rpc(hub, "/mcp/legacy/", "tools/call", {"name": "rounds", "arguments": {}})
    # The server's question got an error, so the call failed: a tool error naming the bound.
    assert "input_required" not in str(over.get("result", {}).get("resultType")), over
    assert f"{MAX_HELD} calls of this token are already waiting" in str(over), over
    # Another token is not held back by this one's calls (on another server: with calls of two tokens in
    # flight on one handshake-era connection, the server's questions cannot be attributed).
    _other, other = services.create_token("other")
    assert rpc(hub, "/mcp/quick/", "tools/call", {"name": "rounds", "arguments": {}}, token=other)["result"][
        "inputRequests"
    ]
    # Answering a held call frees its place.
    [key] = firsts[0]["inputRequests"]
    retry = {"name": "rounds", "arguments": {}, "inputResponses": elicited(key, "name", "Ada")}
    assert rpc(hub, "/mcp/legacy/", "tools/call", {**retry, "requestState": firsts[0]["requestState"]})["result"]


def test_a_retry_reaching_another_web_process_is_refused_clearly(hub: Hub) -> None:
    """A held call lives in the web process that asked; another one (same SECRET_KEY) cannot resume it."""
    first = rpc(hub, "/mcp/legacy/", "tools/call", {"name": "rounds", "arguments": {}})["result"]
    [key] = first["inputRequests"]
    retry = {"name": "rounds", "arguments": {}, "inputResponses": elicited(key, "name", "Ada")}
    with run_web(hub_env()) as other:
        elsewhere = rpc(
            hub, "/mcp/legacy/", "tools/call", {**retry, "requestState": first["requestState"]}, url=other.url
        )
    assert elsewhere["error"]["code"] == -32602
    assert "another web process" in elsewhere["error"]["message"], elsewhere
    # The process that holds it still resumes it.
    second = rpc(hub, "/mcp/legacy/", "tools/call", {**retry, "requestState": first["requestState"]})["result"]
    assert second["resultType"] == "input_required"


@pytest.mark.anyio
async def test_a_client_without_the_capability_is_not_asked(hub: Hub) -> None:
    async with hub.client("/mcp/legacy/") as client:
        with pytest.raises(MCPError, match="no connected client can answer sampling/createMessage"):
            await client.call_tool("sample", {"prompt": "hello"})


@pytest.mark.anyio
async def test_server_everything_elicits_a_2026_client(hub: Hub) -> None:
    answers = Answers()
    async with hub.client("/mcp/everything/", **answers.options()) as client:
        assert client.protocol_version == "2026-07-28"
        result = await client.call_tool("trigger-elicitation-request", {})
    assert "- Name: Ada" in _text(result)
    assert [kind for kind, _params in answers.asked] == ["elicitation"]
