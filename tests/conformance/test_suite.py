"""The official MCP conformance suite, run against the project's conformance fixture directly and through the
hub's transparent endpoint `/mcp/<slug>/`: a client behind the hub must lose nothing (issue 15).

For each requirement set the suite runs twice: against the fixture, then against a live hub
(the Procfile's web command) where the fixture is registered as an HTTP server, through a
loopback hop that adds the token (the suite's CLI sends no headers). Every check that passes
directly must pass through the hub; both totals are printed, and the checks that fail only
through the hub are listed per scenario with the suite's message.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from servers import services
from servers.discovery import discover
from servers.models import McpServer, Transport
from tests.conformance import suite
from tests.conformance.forwarder import bearer_forwarder
from tests.conftest import BASE_DIR, _port_open, free_port, hub_env, run_web, wait_for

CONFORMANCE_SERVER = BASE_DIR / "tests" / "fixtures" / "conformance_server.py"

pytestmark = [pytest.mark.conformance, pytest.mark.slow]


@contextmanager
def conformance_server(log: Path) -> Iterator[str]:
    """tests/fixtures/conformance_server.py on a free port; yields its endpoint URL."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(CONFORMANCE_SERVER), str(port)], stdout=output, stderr=subprocess.STDOUT
        )
        try:
            wait_for(lambda: _port_open(port), timeout=60, what=f"the conformance fixture on {port}")
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            process.terminate()
            process.wait(timeout=30)


def gap_report(requirements: str, direct: dict, through_hub: dict) -> tuple[list[str], int]:
    """Markdown lines: per scenario, the checks that pass directly and not through the hub; and how many."""
    lines, count = [], 0
    scenarios = sorted({scenario for scenario, _id in direct}, key=lambda s: (not direct_scored(direct, s), s))
    for scenario in scenarios:
        lost = [
            (check, through_hub.get(key))
            for key, check in direct.items()
            if key[0] == scenario and check.passed and not (key in through_hub and through_hub[key].passed)
        ]
        if not lost:
            continue
        count += len(lost)
        note = "" if direct_scored(direct, scenario) else " (not scored)"
        lines.append(f"- **{scenario}**{note}:")
        for check, seen in lost:
            what = f"{seen.status}: {seen.message}" if seen else "not reported through the hub"
            lines.append(f"  - `{check.id}`: {what}")
    title = f"### {requirements}: {count} check(s) pass directly but not through the hub"
    return [title, *lines], count


def direct_scored(direct: dict, scenario: str) -> bool:
    return any(check.scored for (name, _id), check in direct.items() if name == scenario)


@pytest.mark.parametrize("requirements", suite.REQUIREMENTS)
def test_the_hub_passes_every_check_the_server_passes(
    requirements: str, transactional_db: None, tmp_path: Path
) -> None:
    with conformance_server(tmp_path / "fixture.log") as url:
        direct = suite.run(url, requirements, tmp_path / "direct")

        # A faithful fixture passes every scored check directly, in every scenario the set requires.
        scored = suite.scored_scenarios(requirements)
        assert scored <= {check.scenario for check in direct.values()}, "scenarios the direct run did not report"
        failing = [f"{c.scenario} {c.id}: {c.message}" for c in direct.values() if c.scored and c.failed]
        assert not failing, "the fixture fails scored checks directly:\n" + "\n".join(failing)

        # Registered as an admin does; discovery now rather than by a worker.
        server = services.save_server(
            McpServer(name="Conformance", slug="conformance", transport=Transport.STREAMABLE_HTTP, url=url)
        )
        discover(server)
        _token, secret = services.create_token("conformance", ["conformance"])
        with run_web(hub_env()) as hub, bearer_forwarder(hub.url, secret) as hop:
            through_hub = suite.run(f"{hop}/mcp/conformance/", requirements, tmp_path / "hub")

    report, lost = gap_report(requirements, direct, through_hub)
    print(f"\n{requirements} scored checks, direct: %d passed, %d failed" % suite.totals(direct))
    print(f"{requirements} scored checks, through the hub: %d passed, %d failed" % suite.totals(through_hub))
    print(f"{requirements} not scored, direct: %d passed, %d failed" % suite.totals(direct, scored=False))
    print(f"{requirements} not scored, through the hub: %d passed, %d failed" % suite.totals(through_hub, scored=False))
    print("\n".join(report))
    assert not lost, "\n".join(report)
