"""Resumable SSE streams for handshake-era clients (SEP-1699): servers/gateway/resumable.py.

Upstream: the conformance fixture (tests/fixtures/conformance_server.py) as `conformance`, whose
`test_reconnection` tool cuts its SSE stream mid-call. Raw HTTP, as the conformance suite reads
streams: the SDK client resumes a cut stream on its own, so it would not show the cut.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp.server.streamable_http import EventMessage
from mcp_types import JSONRPCNotification, JSONRPCResponse

from servers import services
from servers.discovery import discover
from servers.gateway.resumable import RETRY_MS, SessionEvents
from servers.models import McpServer
from tests.conformance.conftest import conformance_server
from tests.conftest import hub_env, run_web
from tests.gateway.conftest import INITIALIZE, INITIALIZED, Hub, tool_call

pytestmark = [pytest.mark.slow]

VERSION = "2025-11-25"
ENDPOINTS = [("/mcp/conformance/", ""), ("/mcp", "conformance__")]


@pytest.fixture
def hub(transactional_db: None, tmp_path: Path) -> Iterator[Hub]:
    with conformance_server(tmp_path / "conformance.log") as url:
        discover(McpServer.objects.create(name="conformance", slug="conformance", transport="streamable_http", url=url))
        _token, secret = services.create_token("tests")
        with run_web(hub_env()) as live:
            yield Hub(live.url, secret, live)


@dataclass
class Event:
    id: str | None
    retry: int | None
    data: str


def events(lines: Iterator[str]) -> list[Event]:
    """The SSE events of a stream, read until the server ends it."""
    seen, fields = [], dict[str, str]()
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
            continue
        if fields:
            retry = fields.get("retry")
            seen.append(Event(fields.get("id"), int(retry) if retry else None, fields.get("data", "")))
            fields = {}
    return seen


class Session:
    """A handshake-era session opened with raw requests to one endpoint of the hub."""

    def __init__(self, hub: Hub, path: str) -> None:
        self.url = hub.url + path
        self.http = httpx2.Client(headers={"Authorization": f"Bearer {hub.token}"}, timeout=60)
        opened = self.http.post(self.url, content=INITIALIZE.replace(b"2025-11-25", VERSION.encode()), headers=JSON)
        assert opened.status_code == 200, opened.text
        self.http.headers.update({"Mcp-Session-Id": opened.headers["mcp-session-id"], "MCP-Protocol-Version": VERSION})
        assert self.http.post(self.url, content=INITIALIZED, headers=JSON).status_code == 202

    def call(self, tool: str, request_id: int = 7) -> list[Event]:
        """A tools/call; the events of its POST stream, until the hub ends it."""
        with self.http.stream("POST", self.url, content=tool_call(tool, {}, request_id), headers=JSON) as response:
            assert response.headers["content-type"].startswith("text/event-stream"), response.read()
            return events(response.iter_lines())

    def resume(self, last_event_id: str) -> dict:
        """A GET with Last-Event-ID: the first JSON-RPC response it replays or streams."""
        headers = {"Accept": "text/event-stream", "Last-Event-ID": last_event_id}
        with self.http.stream("GET", self.url, headers=headers) as response:
            assert response.status_code == 200, response.read()
            for line in response.iter_lines():
                if line.startswith("data:") and line[5:].strip():
                    message = json.loads(line[5:])
                    if "result" in message or "error" in message:
                        return message
        raise AssertionError(f"the stream resumed from {last_event_id} ended without a response")


JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def result_text(message: dict) -> str:
    return str(message["result"]["content"][0]["text"])


@pytest.mark.parametrize(("path", "prefix"), ENDPOINTS)
def test_a_post_stream_opens_with_a_priming_event_and_a_retry_hint(hub: Hub, path: str, prefix: str) -> None:
    stream = Session(hub, path).call(prefix + "test_simple_text")
    priming, *rest = stream
    assert priming.id and priming.data == "" and priming.retry == RETRY_MS, stream
    assert json.loads(rest[-1].data)["result"]["content"][0]["text"] == "This is a simple text response for testing."


@pytest.mark.parametrize(("path", "prefix"), ENDPOINTS)
def test_a_stream_the_upstream_cuts_is_cut_for_the_client_which_resumes_it(hub: Hub, path: str, prefix: str) -> None:
    session = Session(hub, path)
    stream = session.call(prefix + "test_reconnection")
    # Cut before the result, as the server cut the hub's: the client must resume to get it.
    assert not [event for event in stream if '"result"' in event.data], stream
    last = [event.id for event in stream if event.id][-1]
    assert result_text(session.resume(last)) == "Reconnection test completed"


def test_the_sdk_client_gets_the_result_of_a_call_whose_stream_was_cut(hub: Hub) -> None:
    async def call() -> str:
        async with hub.client("/mcp/conformance/", mode="legacy") as client:
            result = await client.call_tool("test_reconnection", {})
            return str(result.content[0].text)  # type: ignore[union-attr]

    assert anyio.run(call) == "Reconnection test completed"


def test_a_session_resumes_only_its_own_streams(hub: Hub) -> None:
    """Request ids (the SDK's stream ids) collide across sessions; each session's events are its own."""
    mine, theirs = Session(hub, "/mcp/conformance/"), Session(hub, "/mcp/conformance/")
    theirs.call("test_error_handling", request_id=1)
    stream = mine.call("test_simple_text", request_id=1)
    replayed = mine.resume(stream[0].id or "")
    assert result_text(replayed) == "This is a simple text response for testing."


def message(text: str) -> JSONRPCNotification:
    return JSONRPCNotification(jsonrpc="2.0", method="notifications/message", params={"data": text})


async def replayed(store: SessionEvents, last_event_id: str) -> tuple[str | None, list[str]]:
    sent: list[EventMessage] = []

    async def send(event: EventMessage) -> None:
        sent.append(event)

    stream = await store.replay_events_after(last_event_id, send)
    return stream, [e.message.params["data"] if isinstance(e.message, JSONRPCNotification) else "-" for e in sent]


@pytest.mark.anyio
async def test_a_replay_sends_the_later_events_of_that_stream_only() -> None:
    store = SessionEvents()
    priming = await store.store_event("1", None)
    await store.store_event("2", message("other request"))
    await store.store_event("1", message("progress"))
    await store.store_event("1", JSONRPCResponse(jsonrpc="2.0", id=1, result={}))  # type: ignore[arg-type]
    stream, sent = await replayed(store, priming)
    assert stream == "1"
    assert sent == ["progress", "-"]  # "-": the response


@pytest.mark.anyio
async def test_a_session_keeps_its_latest_events_only() -> None:
    store = SessionEvents(limit=3)
    first = await store.store_event("1", message("a"))
    kept = [await store.store_event("1", message(text)) for text in "bcd"]
    assert await replayed(store, first) == (None, [])  # forgotten: nothing to resume from
    assert await replayed(store, kept[0]) == ("1", ["c", "d"])
    assert await replayed(store, "no such event") == (None, [])


@pytest.mark.anyio
async def test_a_session_keeps_64_events_by_default() -> None:
    store = SessionEvents()
    ids = [await store.store_event("1", message(str(n))) for n in range(65)]
    assert (await replayed(store, ids[0]))[0] is None
    assert (await replayed(store, ids[1]))[1] == [str(n) for n in range(2, 65)]
