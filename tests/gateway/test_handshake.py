"""A handshake-era session's tools/call on the hub's hot path (servers/gateway/handshake.py), on the wire.

Raw HTTP, as a client of that era writes it: the SDK client would hide what is checked here (ids of
the hub's questions, the cancellation's answer, a resumed stream). The same cases through the SDK's
session manager are in test_parity.py; the SDK client's view in test_client_requests.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp.client.session import ClientRequestContext

from logs.models import RequestLog
from servers import services
from servers.discovery import discover
from servers.models import McpServer
from servers.upstream.relay import USER_AGENT
from tests.conftest import http_fixture_server, hub_env, run_web, sse_messages, wait_for
from tests.gateway.conftest import INITIALIZED, Hub, tool_call

pytestmark = [pytest.mark.slow]

VERSION = "2025-11-25"
JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


class Session:
    """A handshake-era session on /mcp, opened with raw requests, declaring `capabilities`."""

    def __init__(self, hub: Hub, capabilities: dict[str, Any] | None = None, token: str | None = None) -> None:
        self.url = hub.url + "/mcp"
        self.http = httpx2.Client(headers={"Authorization": f"Bearer {token or hub.token}", **JSON}, timeout=60)
        params = {
            "protocolVersion": VERSION,
            "capabilities": capabilities or {},
            "clientInfo": {"name": "t", "version": "1"},
        }
        opened = self.http.post(self.url, json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
        assert opened.status_code == 200, opened.text
        self.id = opened.headers["mcp-session-id"]
        self.http.headers.update({"Mcp-Session-Id": self.id, "MCP-Protocol-Version": VERSION})
        assert self.post(INITIALIZED).status_code == 202

    def post(self, body: bytes | dict[str, Any]) -> httpx2.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.http.post(self.url, content=content)


def events(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """SSE events as they arrive (their fields), until the stream ends."""
    fields: dict[str, str] = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        elif fields:
            yield fields
            fields = {}


def test_a_question_goes_out_on_the_calls_stream_and_its_answer_comes_back(hub: Hub) -> None:
    session = Session(hub, {"elicitation": {}})
    body = tool_call("fixture__input_form", {"message": "Who are you?"}, request_id=7)
    with session.http.stream("POST", session.url, content=body) as response:
        stream = events(response.iter_lines())
        asked = next(json.loads(e["data"]) for e in stream if e.get("data", "").strip())
        assert asked["method"] == "elicitation/create" and asked["params"]["message"] == "[fixture] Who are you?"
        assert str(asked["id"]).startswith("mcphub-")  # the hub's own id, apart from the SDK's
        reply = {"jsonrpc": "2.0", "id": asked["id"], "result": {"action": "accept", "content": {"name": "Ada"}}}
        assert session.post(reply).status_code == 202
        answer = next(json.loads(e["data"]) for e in stream if e.get("data", "").strip())

    assert answer["id"] == 7
    assert json.loads(answer["result"]["content"][0]["text"])["content"] == {"name": "Ada"}


def test_notifications_cancelled_cancels_the_call_which_answers_so(hub: Hub) -> None:
    session = Session(hub)
    body = tool_call("fixture__slow", {"seconds": 30}, request_id=8)
    with session.http.stream("POST", session.url, content=body) as response:
        stream = events(response.iter_lines())
        assert next(stream)["data"] == ""  # the priming event: the call is running
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 8, "reason": "t"}}
        assert session.post(cancel).status_code == 202
        answer = next(json.loads(e["data"]) for e in stream if e.get("data", "").strip())

    assert answer == {"jsonrpc": "2.0", "id": 8, "error": {"code": -32800, "message": "Request cancelled"}}
    record = wait_for(lambda: RequestLog.objects.filter(tool="slow").first(), what="the cancelled call's record")
    assert (record.outcome, record.error) == ("protocol_error", "cancelled by the client")


def test_a_client_that_hangs_up_resumes_and_gets_the_result(hub: Hub) -> None:
    """In this era a dropped stream is no cancellation: the call goes on, and its result waits to be resumed."""
    session = Session(hub)
    with session.http.stream("POST", session.url, content=tool_call("fixture__slow", {"seconds": 1}, 9)) as response:
        priming = next(events(response.iter_lines()))
    assert priming["data"] == "" and priming["retry"] == "1000"

    resumed = session.http.get(session.url, headers={"Accept": "text/event-stream", "Last-Event-ID": priming["id"]})
    assert sse_messages(resumed.text)[-1]["result"]["content"][0]["text"] == "slept 1.0s"
    record = wait_for(lambda: RequestLog.objects.filter(tool="slow").first(), what="the call's record")
    assert record.outcome == "ok"


def test_another_tokens_call_in_the_session_is_refused(hub: Hub) -> None:
    session = Session(hub)
    _token, other = services.create_token("other")
    session.http.headers["Authorization"] = f"Bearer {other}"

    assert session.post(tool_call("fixture__echo", {"text": "mine?"})).status_code == 404


@pytest.mark.parametrize("fast_path", ["1", "0"])
def test_a_call_to_a_2026_server_goes_as_one_raw_post(transactional_db: None, fast_path: str) -> None:
    """A handshake-era client's call to a server that speaks 2026-07-28 only: the relay's POST on the hot path,
    the SDK client's with MCPHUB_FAST_PATH off."""
    with http_fixture_server("--modern-only") as url:
        discover(McpServer.objects.create(name="modern", slug="modern", transport="streamable_http", url=url))
        _token, secret = services.create_token("tests")
        with run_web(hub_env(MCPHUB_FAST_PATH=fast_path)) as web:
            reply = Session(Hub(web.url, secret, web)).post(tool_call("modern__whoami", {}))
    seen = sse_messages(reply.text)[-1]["result"]["structuredContent"]

    assert seen["protocol_version"] == "2026-07-28"
    assert (seen["headers"]["user-agent"] == USER_AGENT) == (fast_path == "1")


def test_a_2026_servers_rounds_reach_the_handshake_client_as_questions(transactional_db: None) -> None:
    """The relayed call's `input_required` answer goes on through the SDK's driver: the client is asked, round by
    round, and the server's final result comes back."""
    asked: list[str] = []

    async def elicitation(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        field = "name" if len(asked) == 1 else "color"
        return types.ElicitResult(action="accept", content={field: "Ada" if field == "name" else "blue"})

    with http_fixture_server("--modern-only") as url:
        discover(McpServer.objects.create(name="modern", slug="modern", transport="streamable_http", url=url))
        _token, secret = services.create_token("tests")
        with run_web(hub_env()) as web:

            async def call() -> types.CallToolResult:
                hub = Hub(web.url, secret, web)
                async with hub.client("/mcp/modern/", mode="legacy", elicitation_callback=elicitation) as client:
                    return await client.call_tool("rounds", {})

            result = anyio.run(call)

    assert asked == ["Your name?", "Your favourite colour?"]
    assert result.content[0].text == "Ada likes blue (state rounds:2:Ada)"  # type: ignore[union-attr]
