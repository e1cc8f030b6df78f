"""The REST API fuzzed by schemathesis from its own OpenAPI schema, against the Procfile's web process.

As a staff session (every operation, writes included) and as a bearer token (its read operations:
a token's writes are refused before their body is read). Every schemathesis check runs but
"schema-valid data is accepted": a valid-looking request may still name an unknown server or a
window longer than allowed. So: no 5xx, every status and body as the schema documents, requests
outside the schema refused. Deterministic generation: a run always sends the same requests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from logs.models import RequestLog
from servers import services
from servers.models import Tool
from tests.conftest import LiveServer, hub_env, run_web
from tests.servers.api_helpers import make_server

pytestmark = pytest.mark.slow

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
# Per operation and phase: about 2 100 requests as staff and 800 as a token, 50 s in all (100: 4 100, 90 s).
MAX_EXAMPLES = 50
CSRF = "fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzz"  # a cookie value of Django's format, echoed in the header
# Health's documented 503 (no server healthy) is its answer, not a server error: a fuzzed write may add servers.
# Detail operations get the seeded objects, or they would only ever see 404s.
CONFIG = """
[[operations]]
include-path = "/api/health/"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]

[[operations]]
include-path = "/api/servers/{{slug}}/"
parameters = {{ slug = "alpha" }}

[[operations]]
include-path = "/api/tools/{{id}}/"
parameters = {{ id = {tool} }}
"""


@pytest.fixture
def web(transactional_db: None) -> Iterator[LiveServer]:
    """The Procfile's web command on a loopback port, with a server, its tools and a request-log row."""
    alpha = make_server("alpha", env={"API_KEY": "s3cret"}, headers={"X-Key": "v"}, status="up")  # health: 200
    Tool.objects.create(server=alpha, name="echo", input_schema={"type": "object"})
    RequestLog.objects.create(created_at=timezone.now(), server_slug="alpha", tool="echo", outcome="ok")
    with run_web(hub_env()) as server:
        yield server


def fuzz(web: LiveServer, tmp_path: Path, headers: list[str], *options: str) -> dict:
    """Run schemathesis on the live API; fail with its report and the web process's log unless all is clean."""
    report = tmp_path / "schemathesis.json"
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.format(tool=Tool.objects.get().pk))
    command = [
        str(SCHEMATHESIS),
        f"--config-file={config}",
        "run",
        f"{web.url}/api/schema/",
        *(part for header in headers for part in ("--header", header)),
        "--checks=all",
        # Not: valid-looking input can still name an unknown server; and the fixed slug "alpha" above
        # overrides the stateful links, so "created resource not found" would report alpha deleted earlier.
        "--exclude-checks=positive_data_acceptance,ensure_resource_availability",
        f"--max-examples={MAX_EXAMPLES}",
        "--generation-deterministic",
        "--generation-with-security-parameters=false",  # keep our identity: no generated Authorization
        "--workers=1",
        "--request-timeout=30",
        "--report=json",
        f"--report-json-path={report}",
        "--no-color",
        *options,
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=280, check=False)
    assert report.exists(), f"schemathesis wrote no report:\n{result.stdout[-8000:]}\n{result.stderr[-4000:]}"
    summary = json.loads(report.read_text())
    cases, operations = summary["test_cases"], summary["operations"]
    print(
        f"schemathesis: {operations['tested']} operations, {cases['generated']} requests, "
        f"{cases['unique_failures']} failures, {len(summary['errors'])} errors, {summary['running_time']:.0f} s"
    )
    # The web process's errors and tracebacks, without a "Bad Request" warning per refused request.
    server_log = "\n".join(line for line in web.log.read_text(errors="replace").splitlines() if " WARNING " not in line)
    assert result.returncode == 0, f"{result.stdout[-8000:]}\n--- web process log ---\n{server_log[-8000:]}"
    assert summary["failures"] == [] and summary["errors"] == []
    assert operations["tested"] == operations["selected"]
    return summary


def test_a_staff_session_gets_no_server_error_from_any_operation(
    web: LiveServer, tmp_path: Path, django_user_model: type[User]
) -> None:
    client = Client()
    client.force_login(django_user_model.objects.create_user("fuzz", password="x", is_staff=True))
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    cookie = f"Cookie: {settings.SESSION_COOKIE_NAME}={session}; {settings.CSRF_COOKIE_NAME}={CSRF}"

    summary = fuzz(web, tmp_path, [cookie, f"X-CSRFToken: {CSRF}"])

    assert summary["operations"]["tested"] == 13  # servers 6, tools 3, status, health, metrics, logs
    assert summary["test_cases"]["generated"] > 1500


def test_a_token_gets_no_server_error_from_any_read(web: LiveServer, tmp_path: Path) -> None:
    _token, secret = services.create_token("fuzz")

    summary = fuzz(web, tmp_path, [f"Authorization: Bearer {secret}"], "--include-method=GET")

    assert summary["operations"]["tested"] == 8  # servers 2, tools 2, status, health, metrics, logs (a 403)
    assert summary["test_cases"]["generated"] > 500
