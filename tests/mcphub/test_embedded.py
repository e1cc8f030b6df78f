"""The embedded PostgreSQL and Redis keep their address across a restart, so a running hub reconnects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BASE_DIR, embedded_env, http_get, run_web, wait_for

pytestmark = pytest.mark.slow


def _embedded(command: str, env: dict[str, str]) -> list[str]:
    """`python -m mcphub.embedded <command>`, as an operator runs it; its output lines."""
    result = subprocess.run(
        [sys.executable, "-m", "mcphub.embedded", command],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_restarted_servers_keep_their_address_and_a_running_hub_recovers(embedded_var_dir: Path) -> None:
    env = embedded_env(embedded_var_dir)
    urls = _embedded("start", env)
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=BASE_DIR, env=env, check=True, timeout=180
        )
        with run_web(env) as hub:
            wait_for(lambda: http_get(hub.url + "/healthz").status == 200, timeout=60, what="a healthy hub")

            _embedded("stop", env)
            wait_for(lambda: http_get(hub.url + "/healthz").status == 503, timeout=60, what="the hub to see them down")
            restarted = _embedded("start", env)

            assert restarted == urls  # same Redis port, same PostgreSQL socket
            # The hub was started before the restart and still holds the old URLs: it reconnects.
            wait_for(lambda: http_get(hub.url + "/healthz").status == 200, timeout=60, what="the hub to recover")
    finally:
        _embedded("stop", env)
