"""Two web processes behind one port serve stateless-era (2026-07-28) clients, whichever answers."""

from __future__ import annotations

import json
import subprocess

import httpx2
import psutil
import pytest

from tests.conftest import BASE_DIR, free_port, http_get, hub_env, uvicorn_command, wait_for
from tests.gateway.conftest import register_fixture

pytestmark = pytest.mark.slow


def _call(url: str, token: str, request_id: int) -> dict:
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {
            "name": "fixture__add",
            "arguments": {"a": request_id, "b": 1},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": "fixture__add",
    }
    # A new connection per call: the kernel spreads them over the two processes.
    response = httpx2.post(url, content=json.dumps(body), headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    text = response.text
    if not text.startswith("{"):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
    return json.loads(text)["result"]


def test_stateless_calls_succeed_on_either_of_two_web_processes(transactional_db: None) -> None:
    from servers import services

    register_fixture("fixture")
    _token, secret = services.create_token("multi")
    port = free_port()
    web = subprocess.Popen(
        uvicorn_command(port, "--workers", "2"),
        cwd=BASE_DIR,
        env=hub_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_get(url + "/healthz", timeout=5).status == 200, timeout=90, what="uvicorn")
        workers = [p for p in psutil.Process(web.pid).children() if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2

        results = [_call(url + "/mcp", secret, i) for i in range(20)]
    finally:
        web.terminate()
        web.wait(timeout=60)

    assert [result["content"][0]["text"] for result in results] == [str(i + 1) for i in range(20)]
