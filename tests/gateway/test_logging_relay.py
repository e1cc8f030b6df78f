"""Logging through the hub: `logging/setLevel` forwarded, `notifications/message` relayed to the calling client."""

from __future__ import annotations

from collections.abc import Iterator

import mcp_types as types
import pytest

from servers import services
from tests.conftest import hub_env, run_web
from tests.gateway.conftest import Hub, Logs, register_fixture, text_json, wait_for_async

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def hub(transactional_db: None) -> Iterator[Hub]:
    """`legacy` (the fixture, handshake era only) and `modern` (the fixture, which speaks 2026-07-28)."""
    register_fixture("legacy", "--legacy-only")
    register_fixture("modern")
    _token, secret = services.create_token("tests")
    with run_web(hub_env()) as server:
        yield Hub(server.url, secret, server)


@pytest.mark.parametrize(
    "path,tool,logger",
    [
        ("/mcp", "legacy__log", "legacy/fixture"),
        ("/mcp/legacy/", "log", "fixture"),
        ("/mcp", "modern__log", "modern/fixture"),
    ],
)
async def test_log_messages_of_a_call_reach_its_client(hub: Hub, path: str, tool: str, logger: str) -> None:
    logs = Logs()
    async with hub.client(path, mode="legacy", logging_callback=logs) as client:
        result = await client.call_tool(tool, {"count": 3})
        assert text_json(result)["sent"] == 3
        await wait_for_async(lambda: len(logs.messages) == 3, what="three log messages")
    assert [(m.level, m.logger, m.data) for m in logs.messages] == [
        ("debug", logger, {"line": 0}),
        ("info", logger, {"line": 1}),
        ("warning", logger, {"line": 2}),
    ]


async def test_set_level_is_forwarded_and_filters(hub: Hub) -> None:
    logs = Logs()
    async with hub.client("/mcp/legacy/", mode="legacy", logging_callback=logs) as client:
        assert "logging" in (client.server_capabilities.model_dump(exclude_none=True))
        await client.session.send_request(
            types.SetLevelRequest(params=types.SetLevelRequestParams(level="warning")), types.EmptyResult
        )
        result = await client.call_tool("log", {"count": 3})
        assert text_json(result) == {"level": "warning", "sent": 1}  # the upstream was told
        await wait_for_async(lambda: len(logs.messages) == 1, what="one log message")
    assert [m.level for m in logs.messages] == ["warning"]
