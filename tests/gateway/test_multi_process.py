"""Two web processes behind one port serve stateless-era (2026-07-28) clients, whichever answers."""

from __future__ import annotations

import subprocess

import psutil
import pytest

from tests.conftest import BASE_DIR, free_port, http_get, hub_env, uvicorn_command, wait_for
from tests.gateway.conftest import register_fixture, stateless_call

pytestmark = pytest.mark.slow


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

        results = [stateless_call(url + "/mcp", secret, i) for i in range(20)]
    finally:
        web.terminate()
        web.wait(timeout=60)

    assert [result["content"][0]["text"] for result in results] == [str(i + 1) for i in range(20)]
