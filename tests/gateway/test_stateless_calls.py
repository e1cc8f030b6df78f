"""The hot path for 2026-07-28 tools/call (servers/gateway/stateless.py), with an HTTP upstream relayed raw."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx2
import mcp_types as types
import pytest

from logs.models import RequestLog
from servers import services
from servers.discovery import discover
from servers.models import McpServer
from servers.upstream.relay import USER_AGENT
from tests.conftest import http_fixture_server, hub_env, run_web, wait_for
from tests.gateway.conftest import Hub, answer, modern_request, register_fixture, sse_messages

pytestmark = [pytest.mark.slow]


@pytest.fixture
def http_hub(transactional_db: None) -> Iterator[Hub]:
    """`web` (and `webquick`, call timeout 2 s): our fixture server over Streamable HTTP; `fixture`: over stdio.

    Keep-alive pings at 0.5 s; bodies up to 1 MB.
    """
    with http_fixture_server() as url:
        for slug, timeout in (("web", 60), ("webquick", 2)):
            server = McpServer.objects.create(
                name=slug, slug=slug, transport="streamable_http", url=url, call_timeout=timeout
            )
            discover(server)
        register_fixture("fixture")
        _token, secret = services.create_token("tests")
        with run_web(hub_env(MCPHUB_SSE_KEEPALIVE_SECONDS="0.5", MCPHUB_MAX_REQUEST_BYTES="1000000")) as live:
            yield Hub(live.url, secret, live)


def test_call_to_a_stateless_http_upstream_is_relayed(http_hub: Hub) -> None:
    response = http_hub.call("web__whoami", {}, request_id="abc")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    message = response.json()
    assert message["id"] == "abc"
    seen = message["result"]["structuredContent"]
    # The upstream got one stateless POST from the relay, with the routing headers of its own tool name.
    assert seen["protocol_version"] == "2026-07-28"
    assert seen["headers"]["user-agent"] == USER_AGENT
    assert seen["headers"]["mcp-method"] == "tools/call"
    assert seen["headers"]["mcp-name"] == "whoami"
    assert seen["session_id"] is None


def test_results_and_tool_errors_pass_through_both_upstream_kinds(http_hub: Hub) -> None:
    for slug in ("web", "fixture"):
        added = answer(http_hub.call(f"{slug}__add", {"a": 2, "b": 3}, request_id=7))
        assert added["id"] == 7
        assert added["result"]["structuredContent"] == {"result": 5}
        failed = answer(http_hub.call(f"{slug}__fail", {}))["result"]
        assert failed["isError"] is True
        assert failed["content"][0]["text"] == "this tool always fails"

    wait_for(lambda: RequestLog.objects.filter(tool="fail").count() == 2, what="the call records")
    records = RequestLog.objects.filter(tool__in=["add", "fail"])
    assert {(r.server_slug, r.tool, r.outcome, r.protocol_era) for r in records} == {
        ("web", "add", "ok", "stateless"),
        ("fixture", "add", "ok", "stateless"),
        ("web", "fail", "tool_error", "stateless"),
        ("fixture", "fail", "tool_error", "stateless"),
    }
    assert all(r.response_bytes > 0 and r.request_bytes > 0 for r in records)


def test_a_long_call_becomes_a_stream_with_keepalive_pings(http_hub: Hub) -> None:
    response = http_hub.call("web__slow", {"seconds": 2})

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert ": ping" in response.text
    [message] = sse_messages(response.text)
    assert message["id"] == "call-1"
    assert message["result"]["content"][0]["text"] == "slept 2.0s"


def test_closing_the_request_cancels_the_call(http_hub: Hub) -> None:
    with httpx2.stream(
        **modern_request(http_hub.url + "/mcp", http_hub.token, "web__slow", {"seconds": 30})
    ) as response:
        assert response.headers["content-type"] == "text/event-stream"  # the call is running; we hang up

    record = wait_for(lambda: RequestLog.objects.filter(tool="slow").first(), what="the cancelled call's record")
    assert isinstance(record, RequestLog)
    assert (record.outcome, record.error) == ("protocol_error", "cancelled by the client")
    assert answer(http_hub.call("web__echo", {"text": "still there"}))["result"]["content"][0]["text"] == "still there"


def test_a_relayed_call_over_its_time_is_a_tool_error_naming_server_and_limit(http_hub: Hub) -> None:
    result = answer(http_hub.call("webquick__slow", {"seconds": 20}))["result"]

    assert result["isError"] is True
    assert result["content"][0]["text"] == "webquick: no answer within 2 s"
    # The hub wrote this result, so it carries the hub's serverInfo stamp (an upstream's own stamp would win).
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcphub"


def test_an_upstream_dying_mid_call_is_a_tool_error_naming_the_server(http_hub: Hub) -> None:
    result = answer(http_hub.call("web__crash", {}))["result"]

    assert result["isError"] is True
    assert result["content"][0]["text"].startswith("web: connection lost during the call")
    record = wait_for(lambda: RequestLog.objects.filter(tool="crash").first(), what="the crashed call's record")
    assert isinstance(record, RequestLog)
    assert record.outcome == "connection_lost"
    # The server is gone now: the next call cannot reach it at all.
    after = answer(http_hub.call("web__echo", {"text": "anyone?"}))["result"]
    assert after["isError"] is True
    record = wait_for(lambda: RequestLog.objects.filter(tool="echo").first(), what="the next call's record")
    assert isinstance(record, RequestLog)
    assert record.outcome == "upstream_down"


def test_a_call_over_the_body_limit_is_413(http_hub: Hub) -> None:
    response = http_hub.call("web__echo", {"text": "x" * 1_100_000})

    assert response.status_code == 413


def test_unknown_tool_is_invalid_params_with_http_400(http_hub: Hub) -> None:
    response = http_hub.call("web__nope", {})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == types.INVALID_PARAMS
    assert response.json()["id"] == "call-1"


def test_a_request_failing_the_sdk_checks_gets_the_sdk_error(http_hub: Hub) -> None:
    # Mcp-Name disagrees with the body: the hot path leaves the request to the SDK, which refuses it.
    response = http_hub.call("web__echo", {"text": "x"}, **{"Mcp-Name": "web__add"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == types.HEADER_MISMATCH


def test_a_call_asking_for_progress_gets_it_through_the_sdk(http_hub: Hub) -> None:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "progressToken": "p1",
    }
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "web__slow", "arguments": {"seconds": 0.5}, "_meta": meta},
    }
    response = http_hub.post(
        json.dumps(body).encode(),
        **{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "web__slow"},
    )

    messages = sse_messages(response.text)
    progress = [m for m in messages if m.get("method") == "notifications/progress"]
    assert progress and all(m["params"]["progressToken"] == "p1" for m in progress)
    assert messages[-1]["result"]["content"][0]["text"] == "slept 0.5s"
