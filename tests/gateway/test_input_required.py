"""Multi-round requests (2026-07-28, SEP-2322) through the hub: servers/gateway/rounds.py and request_state.py.

Upstreams: our fixture server over Streamable HTTP (`web`, relayed raw) and over stdio
(`fixture`); its ``rounds`` tool takes three rounds with a plaintext state of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from logs.models import RequestLog
from servers import services
from servers.discovery import discover
from servers.models import McpServer
from tests.conftest import http_fixture_server, hub_env, run_web, wait_for
from tests.gateway.conftest import Hub, modern_rpc, register_fixture

pytestmark = [pytest.mark.slow]

CAPABILITIES = {"elicitation": {}, "sampling": {}, "roots": {"listChanged": True}}
ELICITATION_ONLY = {"elicitation": {}}


@pytest.fixture
def hub(transactional_db: None) -> Iterator[Hub]:
    with http_fixture_server() as url:
        discover(McpServer.objects.create(name="web", slug="web", transport="streamable_http", url=url))
        register_fixture("fixture")
        _token, secret = services.create_token("tests")
        with run_web(hub_env()) as live:
            yield Hub(live.url, secret, live)


def rpc(
    hub: Hub,
    path: str,
    method: str,
    params: dict[str, Any],
    capabilities: dict[str, Any] | None = None,
    token: str | None = None,
    url: str | None = None,
) -> dict[str, Any]:
    """One raw 2026-07-28 request to `path`; its JSON-RPC answer."""
    declared = CAPABILITIES if capabilities is None else capabilities
    return modern_rpc((url or hub.url) + path, token or hub.token, method, params, declared)


def elicited(key: str, field: str, value: str) -> dict[str, Any]:
    return {key: {"action": "accept", "content": {field: value}}}


@pytest.mark.parametrize(
    ("path", "tool"),
    [("/mcp/web/", "rounds"), ("/mcp", "web__rounds"), ("/mcp/fixture/", "rounds"), ("/mcp", "fixture__rounds")],
)
def test_three_rounds_pass_through_with_the_upstream_state_sealed(hub: Hub, path: str, tool: str) -> None:
    first = rpc(hub, path, "tools/call", {"name": tool, "arguments": {}})["result"]
    assert first["resultType"] == "input_required"
    assert first["inputRequests"]["name"]["method"] == "elicitation/create"
    state = first["requestState"]
    assert "rounds" not in state  # the upstream's own state ("rounds:1") is sealed, not shown

    second = rpc(
        hub,
        path,
        "tools/call",
        {"name": tool, "arguments": {}, "inputResponses": elicited("name", "name", "Ada"), "requestState": state},
    )["result"]
    assert second["resultType"] == "input_required"
    assert list(second["inputRequests"]) == ["color"]
    assert second["requestState"] != state and "Ada" not in second["requestState"]

    third = rpc(
        hub,
        path,
        "tools/call",
        {
            "name": tool,
            "arguments": {},
            "inputResponses": elicited("color", "color", "blue"),
            "requestState": second["requestState"],
        },
    )["result"]
    assert third.get("resultType", "complete") == "complete"
    # The upstream got back each round's own state, exactly.
    assert third["content"][0]["text"] == "Ada likes blue (state rounds:2:Ada)"
    assert not third.get("isError")


def test_a_tampered_foreign_or_misused_state_is_refused(hub: Hub) -> None:
    state = rpc(hub, "/mcp/web/", "tools/call", {"name": "rounds", "arguments": {}})["result"]["requestState"]
    retry = {"name": "rounds", "arguments": {}, "inputResponses": elicited("name", "name", "Ada")}
    _other, other_secret = services.create_token("other")
    for path, params, token in [
        ("/mcp/web/", {**retry, "requestState": state + "x"}, None),  # tampered
        ("/mcp/web/", {**retry, "requestState": "v1.bm90IG91cnM"}, None),  # never minted
        ("/mcp/web/", {**retry, "requestState": state}, other_secret),  # another token
        ("/mcp/fixture/", {**retry, "requestState": state}, None),  # another server's endpoint
        ("/mcp/web/", {**retry, "arguments": {"x": 1}, "requestState": state}, None),  # another request
    ]:
        message = rpc(hub, path, "tools/call", params, token=token)
        assert message["error"]["code"] == -32602, (path, params)
        assert message["error"]["message"] == "Invalid or expired requestState"
    # The genuine state still works.
    assert rpc(hub, "/mcp/web/", "tools/call", {**retry, "requestState": state})["result"]["inputRequests"]["color"]
    wait_for(
        lambda: RequestLog.objects.filter(error="invalid requestState").count() == 5, what="the refused rounds' records"
    )


@pytest.mark.parametrize("path", ["/mcp/web/", "/mcp/fixture/"])
def test_the_client_capabilities_reach_the_upstream_and_none_are_invented(hub: Hub, path: str) -> None:
    declared = {**ELICITATION_ONLY, "experimental": {"x": {}}}
    seen = rpc(hub, path, "tools/call", {"name": "capabilities", "arguments": {}}, capabilities=declared)
    assert seen["result"]["structuredContent"]["capabilities"] == ELICITATION_ONLY
    seen = rpc(hub, path, "tools/call", {"name": "capabilities", "arguments": {}}, capabilities={})
    assert seen["result"]["structuredContent"]["capabilities"] == {}

    gated = rpc(hub, path, "tools/call", {"name": "gated", "arguments": {}}, capabilities={"sampling": {}})["result"]
    assert gated["resultType"] == "input_required"
    assert [request["method"] for request in gated["inputRequests"].values()] == ["sampling/createMessage"]


@pytest.mark.parametrize(
    ("path", "prompt", "uri"),
    [
        ("/mcp/web/", "rounds_prompt", "fixture://rounds"),
        ("/mcp", "web__rounds_prompt", "mcphub+web:fixture://rounds"),
        ("/mcp/fixture/", "rounds_prompt", "fixture://rounds"),
    ],
)
def test_prompts_and_resource_reads_take_rounds_too(hub: Hub, path: str, prompt: str, uri: str) -> None:
    first = rpc(hub, path, "prompts/get", {"name": prompt})["result"]
    assert first["resultType"] == "input_required" and "topic" in first["inputRequests"]
    done = rpc(
        hub,
        path,
        "prompts/get",
        {"name": prompt, "inputResponses": elicited("topic", "topic", "owls"), "requestState": first["requestState"]},
    )["result"]
    assert done["messages"][0]["content"]["text"] == "Tell me about owls"

    first = rpc(hub, path, "resources/read", {"uri": uri})["result"]
    assert first["resultType"] == "input_required" and "word" in first["inputRequests"]
    # A state minted for the prompt is no good for the resource.
    wrong = rpc(hub, path, "resources/read", {"uri": uri, "requestState": done.get("requestState", "v1.x")})
    assert wrong["error"]["code"] == -32602
    done = rpc(
        hub,
        path,
        "resources/read",
        {"uri": uri, "inputResponses": elicited("word", "word", "hoot"), "requestState": first["requestState"]},
    )["result"]
    assert done["contents"] == [{"uri": uri, "text": "you said hoot"}]


def test_a_round_is_answered_by_another_web_process(hub: Hub) -> None:
    """The hub keeps nothing between rounds: a second web process (same SECRET_KEY) takes the retry."""
    first = rpc(hub, "/mcp/web/", "tools/call", {"name": "rounds", "arguments": {}})["result"]
    with run_web(hub_env()) as other:
        second = rpc(
            hub,
            "/mcp/web/",
            "tools/call",
            {
                "name": "rounds",
                "arguments": {},
                "inputResponses": elicited("name", "name", "Ada"),
                "requestState": first["requestState"],
            },
            url=other.url,
        )["result"]
    assert list(second["inputRequests"]) == ["color"]


def test_a_tool_the_snapshot_does_not_list_reaches_the_server_on_its_endpoint(hub: Hub) -> None:
    """/mcp/<slug>/ answers as the server would; /mcp knows only the tools it lists."""
    for path in ("/mcp/web/", "/mcp/fixture/"):
        result = rpc(hub, path, "tools/call", {"name": "unlisted", "arguments": {}})["result"]
        assert result["content"][0]["text"] == "an unlisted tool answered"
        unknown = rpc(hub, path, "tools/call", {"name": "nope", "arguments": {}})
        assert unknown["error"]["code"] == -32602  # the server's own answer
    assert rpc(hub, "/mcp", "tools/call", {"name": "web__unlisted", "arguments": {}})["error"]["code"] == -32602
