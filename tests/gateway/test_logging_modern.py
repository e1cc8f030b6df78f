"""Log messages of 2026-07-28 clients' calls: at the level each asked in `_meta`, on its call's own stream.

Through the hub's hot path (a 2026-07-28 tools/call), to 2026-07-28 upstreams over HTTP (`web`) and stdio
(`local`), and a handshake-era one over stdio (`legacy`, its level set with `logging/setLevel`).
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import mcp_types as types
import pytest

from servers import services
from servers.discovery import discover
from servers.models import McpServer
from tests.conftest import http_fixture_server, hub_env, run_web
from tests.gateway.conftest import Hub, Logs, register_fixture, text_json, wait_for_async

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def hub(transactional_db: None) -> Iterator[Hub]:
    """The fixture as `web` (over HTTP) and `local` (stdio), which speak 2026-07-28, and `legacy` (stdio,
    handshake era only)."""
    with http_fixture_server() as url:
        discover(McpServer.objects.create(name="web", slug="web", transport="streamable_http", url=url))
        register_fixture("legacy", "--legacy-only")
        register_fixture("local")
        _token, secret = services.create_token("tests")
        with run_web(hub_env()) as live:
            yield Hub(live.url, secret, live)


ENDPOINTS = [
    ("/mcp", "web__log", "web/fixture"),
    ("/mcp/web/", "log", "fixture"),
    ("/mcp", "legacy__log", "legacy/fixture"),
    ("/mcp/legacy/", "log", "fixture"),
    ("/mcp/local/", "log", "fixture"),
]


@pytest.mark.parametrize(("path", "tool", "logger"), ENDPOINTS)
async def test_a_call_gets_its_log_messages_at_its_level_and_none_without_one(
    hub: Hub, path: str, tool: str, logger: str
) -> None:
    logs = Logs()
    async with hub.client(path, logging_callback=logs) as client:
        assert client.protocol_version == "2026-07-28"
        await client.call_tool(tool, {"count": 3})  # no level in `_meta`: no log messages
        answer = text_json(await client.call_tool(tool, {"count": 6}, meta={types.LOG_LEVEL_META_KEY: "info"}))
        # A call's messages come before its result on its stream: the first call's would be here by now.
        await wait_for_async(lambda: len(logs.messages) >= 4, what="the second call's log messages")
    assert logs.seen() == [
        ("info", {"line": 1}),
        ("warning", {"line": 2}),
        ("info", {"line": 4}),
        ("warning", {"line": 5}),
    ]
    assert {message.logger for message in logs.messages} == {logger}
    if "legacy" in tool or "legacy" in path:
        assert answer["level"] == "info"  # the handshake-era upstream was set to the caller's level
    else:
        assert answer["requested"] == "info"  # the 2026-07-28 upstream got it in the request's `_meta`


@pytest.mark.parametrize(("path", "tool"), [("/mcp", "web__log"), ("/mcp/web/", "log")])
async def test_concurrent_clients_each_get_only_their_own_log_messages(hub: Hub, path: str, tool: str) -> None:
    verbose, quiet = Logs(), Logs()
    async with (
        hub.client(path, logging_callback=verbose, log_level="debug") as first,
        hub.client(path, logging_callback=quiet, log_level="warning") as second,
        anyio.create_task_group() as calls,
    ):
        # Interleaved: both calls log for about a second.
        calls.start_soon(first.call_tool, tool, {"count": 4, "pause": 0.3})
        calls.start_soon(second.call_tool, tool, {"count": 6, "pause": 0.2})
    await wait_for_async(lambda: len(verbose.messages) >= 4 and len(quiet.messages) >= 2, what="both calls' logs")
    assert verbose.seen() == [
        ("debug", {"line": 0}),
        ("info", {"line": 1}),
        ("warning", {"line": 2}),
        ("debug", {"line": 3}),
    ]
    assert quiet.seen() == [("warning", {"line": 2}), ("warning", {"line": 5})]


async def test_a_handshake_era_upstream_gets_its_level_again_after_a_reconnect(hub: Hub) -> None:
    async with hub.client("/mcp/legacy/", mode="legacy") as client:
        await client.session.send_request(
            types.SetLevelRequest(params=types.SetLevelRequestParams(level="warning")), types.EmptyResult
        )
        assert text_json(await client.call_tool("log", {"count": 3}))["level"] == "warning"
        crashed = await client.call_tool("crash", {})
        assert crashed.is_error
        with anyio.fail_after(60):
            while (result := await client.call_tool("log", {"count": 3})).is_error:
                await anyio.sleep(0.5)  # the hub reconnects after a short backoff
    assert text_json(result) == {"level": "warning", "sent": 1}  # a new process, set to the session's level


async def test_on_a_shared_connection_a_message_never_reaches_another_client(hub: Hub) -> None:
    """stdio does not say which call a message belongs to: with two calls in flight, the hub cannot tell."""
    verbose, quiet = Logs(), Logs()
    async with (
        hub.client("/mcp/legacy/", logging_callback=verbose, log_level="debug") as first,
        hub.client("/mcp/legacy/", logging_callback=quiet, log_level="warning") as second,
    ):
        async with anyio.create_task_group() as calls:
            # The second call's warnings (lines 2, 5, 8) come while the first call is in flight.
            calls.start_soon(first.call_tool, "log", {"count": 4, "pause": 1.0})
            await anyio.sleep(0.3)
            calls.start_soon(second.call_tool, "log", {"count": 9, "pause": 0.2})
        await first.call_tool("log", {"count": 1})  # alone on the connection: its debug message is relayed
        await wait_for_async(lambda: ("debug", {"line": 0}) in verbose.seen()[-1:], what="the lone call's message")
    own = [("debug", {"line": 0}), ("info", {"line": 1}), ("warning", {"line": 2}), ("debug", {"line": 3})]
    assert all(seen in own for seen in verbose.seen())  # never the other call's warnings of lines 5 and 8
    assert all(seen in [("warning", {"line": n}) for n in (2, 5, 8)] for seen in quiet.seen())
