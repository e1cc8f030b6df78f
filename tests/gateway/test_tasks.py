"""The tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663) through the hub: servers/gateway/tasks.py.

Upstreams: the conformance fixture (tests/fixtures/conformance_server.py), which implements
the extension, as `tasker`; our fixture server, which does not, as `web`. Raw 2026-07-28
requests: the SDK client has no tasks API.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from logs.models import RequestLog
from servers import services
from servers.discovery import discover
from servers.models import McpServer
from tests.conformance.conftest import conformance_server
from tests.conftest import http_fixture_server, hub_env, run_web, wait_for
from tests.gateway.conftest import Hub, modern_rpc

pytestmark = [pytest.mark.slow]

TASKS = "io.modelcontextprotocol/tasks"
WITH_TASKS = {"elicitation": {}, "extensions": {TASKS: {}}}
ENDPOINTS = [("/mcp/tasker/", "slow_compute"), ("/mcp", "tasker__slow_compute")]


@pytest.fixture
def hub(transactional_db: None, tmp_path: Path) -> Iterator[Hub]:
    with conformance_server(tmp_path / "tasker.log") as tasker_url, http_fixture_server() as web_url:
        discover(McpServer.objects.create(name="tasker", slug="tasker", transport="streamable_http", url=tasker_url))
        discover(McpServer.objects.create(name="web", slug="web", transport="streamable_http", url=web_url))
        _token, secret = services.create_token("tests")
        with run_web(hub_env()) as live:
            yield Hub(live.url, secret, live)


def rpc(
    hub: Hub, path: str, method: str, params: dict[str, Any], token: str | None = None, **options: Any
) -> dict[str, Any]:
    capabilities = options.pop("capabilities", WITH_TASKS)
    return modern_rpc(hub.url + path, token or hub.token, method, params, capabilities, **options)


def create(hub: Hub, path: str, tool: str, seconds: float) -> str:
    created = rpc(hub, path, "tools/call", {"name": tool, "arguments": {"seconds": seconds, "label": "t"}})["result"]
    assert created["resultType"] == "task", created
    assert created["status"] == "working"
    task_id: str = created["taskId"]
    return task_id


def poll(hub: Hub, path: str, task_id: str, until: str) -> dict[str, Any]:
    """tasks/get until the task is `until` (or ended otherwise); the last answer."""
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen.update(rpc(hub, path, "tasks/get", {"taskId": task_id})["result"])
        return seen["status"] in (until, "completed", "failed", "cancelled")

    wait_for(reached, timeout=60, interval=0.2, what=f"task status {until}")
    return seen


def test_the_extension_is_advertised_where_a_visible_server_supports_it(hub: Hub) -> None:
    _web_only, web_secret = services.create_token("web only", ["web"])
    for path, token, advertised in [
        ("/mcp/tasker/", None, True),
        ("/mcp", None, True),
        ("/mcp/web/", None, False),
        ("/mcp", web_secret, False),
    ]:
        capabilities = rpc(hub, path, "server/discover", {}, token=token)["result"]["capabilities"]
        assert (TASKS in (capabilities.get("extensions") or {})) is advertised, (path, capabilities)


@pytest.mark.parametrize(("path", "tool"), ENDPOINTS)
def test_a_task_is_created_polled_to_completion_and_recorded(hub: Hub, path: str, tool: str) -> None:
    task_id = create(hub, path, tool, seconds=1)
    done = poll(hub, path, task_id, "completed")
    assert done["status"] == "completed"
    assert done["taskId"] == task_id
    assert done["result"]["content"][0]["text"] == "computed t in 1 s"
    rpc(hub, path, "tasks/get", {"taskId": task_id})  # seen ended again: still one record of its end

    wait_for(lambda: RequestLog.objects.filter(tool="task:slow_compute").exists(), what="the task's final record")
    records = {record.tool: record for record in RequestLog.objects.all()}
    assert records["slow_compute"].outcome == "ok"  # the creation
    final = RequestLog.objects.get(tool="task:slow_compute")
    assert (final.outcome, final.server_slug) == ("ok", "tasker")
    assert final.latency_ms >= 1000  # from the task's creation to the poll that saw it end


@pytest.mark.parametrize(("path", "tool"), ENDPOINTS)
def test_a_task_is_cancelled(hub: Hub, path: str, tool: str) -> None:
    task_id = create(hub, path, tool, seconds=60)
    assert rpc(hub, path, "tasks/cancel", {"taskId": task_id})["result"]["resultType"] == "complete"
    assert poll(hub, path, task_id, "cancelled")["status"] == "cancelled"
    record = wait_for(lambda: RequestLog.objects.filter(tool="task:slow_compute").first(), what="the final record")
    assert isinstance(record, RequestLog)
    assert (record.outcome, record.error) == ("protocol_error", "task cancelled")


def test_input_reaches_a_task_through_tasks_update(hub: Hub) -> None:
    created = rpc(hub, "/mcp", "tools/call", {"name": "tasker__confirm_delete", "arguments": {"filename": "a.txt"}})
    task_id = created["result"]["taskId"]
    waiting = poll(hub, "/mcp", task_id, "input_required")
    assert waiting["inputRequests"]["confirm"]["method"] == "elicitation/create"
    answer = {"confirm": {"action": "accept", "content": {"ok": True}}}
    ack = rpc(hub, "/mcp", "tasks/update", {"taskId": task_id, "inputResponses": answer})["result"]
    assert ack["resultType"] == "complete"
    assert poll(hub, "/mcp", task_id, "completed")["result"]["content"][0]["text"] == "a.txt: accept"


def test_another_token_or_endpoint_cannot_see_or_cancel_a_task(hub: Hub) -> None:
    task_id = create(hub, "/mcp", "tasker__slow_compute", seconds=60)
    _other, other_secret = services.create_token("other")
    for path, method, token in [
        ("/mcp", "tasks/get", other_secret),
        ("/mcp", "tasks/cancel", other_secret),
        ("/mcp/tasker/", "tasks/get", None),  # minted for /mcp
        ("/mcp", "tasks/get", None),
    ]:
        target = task_id if token or path != "/mcp" else task_id[:-2] + "xx"  # the last: tampered
        error = rpc(hub, path, method, {"taskId": target}, token=token)["error"]
        assert error["code"] == -32602, (path, method)
    # Still running for its owner: the other token's cancel reached nothing.
    assert rpc(hub, "/mcp", "tasks/get", {"taskId": task_id})["result"]["status"] == "working"
    rpc(hub, "/mcp", "tasks/cancel", {"taskId": task_id})


def test_the_extension_is_gated_as_the_server_gates_it(hub: Hub) -> None:
    task_id = create(hub, "/mcp", "tasker__slow_compute", seconds=60)
    undeclared = rpc(hub, "/mcp", "tasks/get", {"taskId": task_id}, capabilities={})["error"]
    assert undeclared["code"] == -32021
    mismatch = rpc(hub, "/mcp", "tasks/get", {"taskId": task_id}, **{"Mcp-Name": "another-task"})["error"]
    assert mismatch["code"] == -32020
    call = {"name": "tasker__slow_compute", "arguments": {"seconds": 0}}
    plain = rpc(hub, "/mcp", "tools/call", call, capabilities={})
    assert plain["result"]["resultType"] == "complete"  # no task for a client without the extension
    rpc(hub, "/mcp", "tasks/cancel", {"taskId": task_id})


def test_a_second_web_process_serves_the_task(hub: Hub) -> None:
    task_id = create(hub, "/mcp", "tasker__slow_compute", seconds=1)
    with run_web(hub_env()) as second:
        other = Hub(second.url, hub.token, second)
        assert poll(other, "/mcp", task_id, "completed")["result"]["content"][0]["text"] == "computed t in 1 s"


def test_a_handshake_era_session_has_no_task_methods(hub: Hub) -> None:
    session_id = hub.open_session()
    body = b'{"jsonrpc":"2.0","id":2,"method":"tasks/get","params":{"taskId":"x"}}'
    response = hub.in_session(session_id, body)
    assert '"code":-32601' in response.text.replace(" ", "")
