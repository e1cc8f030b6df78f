"""The project's conformance fixture server (tests/fixtures/conformance_server.py), run for a test."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import BASE_DIR, free_port, http_get, wait_for

CONFORMANCE_SERVER = BASE_DIR / "tests" / "fixtures" / "conformance_server.py"


@contextmanager
def conformance_server(log: Path) -> Iterator[str]:
    """tests/fixtures/conformance_server.py on a free port; yields its endpoint URL."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(CONFORMANCE_SERVER), str(port)], stdout=output, stderr=subprocess.STDOUT
        )
        try:
            wait_for(lambda: http_get(f"http://127.0.0.1:{port}/mcp", timeout=5).status, timeout=60, what="the fixture")
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            process.terminate()
            process.wait(timeout=30)
