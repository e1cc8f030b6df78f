"""The official MCP conformance suite, run against the project's conformance fixture directly and through the
hub's transparent endpoint `/mcp/<slug>/`: a client behind the hub must lose nothing (issue 15).

For each requirement set the suite runs twice: against the fixture, then against a live hub
(the Procfile's web command) where the fixture is registered as an HTTP server, through a
loopback hop that adds the token (the suite's CLI sends no headers). Every check that passes
directly must pass through the hub; both totals are printed, and the checks that fail only
through the hub are listed per scenario with the suite's message. That holds for every check, those
of the scenarios the requirement set scores and the others (pending scenarios, the tasks extension).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from servers import services
from servers.discovery import discover
from servers.models import McpServer, Transport
from tests.conformance import suite
from tests.conformance.conftest import conformance_server
from tests.conformance.forwarder import bearer_forwarder
from tests.conformance.suite import Check
from tests.conftest import hub_env, run_web

Checks = dict[tuple[str, str], Check]

pytestmark = [pytest.mark.conformance, pytest.mark.slow]


def gap_report(requirements: str, direct: Checks, through_hub: Checks) -> tuple[list[str], list[Check]]:
    """The checks that pass directly and not through the hub, and a Markdown list of them per scenario (scored
    scenarios first) with what the hub run said: the check's status and message, and, as the hub run may
    never reach a check, the scenario's other failures through the hub."""
    lines, lost = [], []
    scenarios = sorted({check.scenario for check in direct.values()}, key=lambda s: (not is_scored(direct, s), s))
    for scenario in scenarios:
        missing = [
            c for key, c in direct.items() if c.scenario == scenario and c.passed and not passes(through_hub, key)
        ]
        if not missing:
            continue
        lost += missing
        lines.append(f"- **{scenario}**{'' if missing[0].scored else ' (not scored)'}:")
        for check in missing:
            seen = through_hub.get((scenario, check.id))
            lines.append(f"  - `{check.id}`: " + (f"{seen.status}: {seen.message}" if seen else "not reported"))
        for key in sorted({key for key in through_hub if key[0] == scenario} - set(direct)):
            if through_hub[key].failed:
                lines.append(f"  - (hub run only) `{key[1]}`: {through_hub[key].status}: {through_hub[key].message}")
    scored = sum(check.scored for check in lost)
    title = f"### {requirements}: {scored} scored (+{len(lost) - scored} other) checks pass directly, not via the hub"
    return [title, *lines], lost


# Checks the hub is known to lose, each with why: listed in the README, and removed once fixed
# (a listed check that passes through the hub fails this test, as a stale entry).
KNOWN_GAPS: dict[str, dict[tuple[str, str], str]] = {}


TASKS = "tasks-"  # the scenarios of the tasks extension (SEP-2663)


def passes(checks: Checks, key: tuple[str, str]) -> bool:
    return key in checks and checks[key].passed


def is_scored(checks: Checks, scenario: str) -> bool:
    return any(check.scored for check in checks.values() if check.scenario == scenario)


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
    for name, checks in (("direct", direct), ("through the hub", through_hub)):
        print(f"{requirements} tasks extension, {name}: %d passed, %d failed" % suite.totals(checks, False, TASKS))
    print("\n".join(report))
    known = KNOWN_GAPS.get(requirements, {})
    # Scored or not (pending scenarios, the tasks extension, SSE polling): a client loses nothing through the hub.
    assert not [check for check in lost if (check.scenario, check.id) not in known], "\n".join(report)
    stale = [key for key in known if passes(through_hub, key)]
    assert not stale, f"known gaps that now pass through the hub (remove them from KNOWN_GAPS): {stale}"
