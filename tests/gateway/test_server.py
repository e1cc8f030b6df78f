"""The gateway's MCP server object (servers/gateway/server.py), built as the web process builds it."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import BASE_DIR

BUILD = "import django; django.setup(); from servers.gateway.server import Gateway; Gateway(); print('built')"


def test_the_gateway_builds_without_the_sdks_deprecation_warnings() -> None:
    """Handlers for handshake-era logging and roots are wanted, not a warning in every web process's log."""
    built = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", BUILD],
        cwd=BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "mcphub.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert built.returncode == 0, built.stderr[-2000:]
    assert built.stdout.strip() == "built"
