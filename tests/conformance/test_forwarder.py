"""The bearer hop is transparent: the conformance suite through it to the fixture scores as the suite straight
to the fixture, so what the hub comparison (test_suite.py) finds is the hub's, not the harness's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance import suite
from tests.conformance.conftest import conformance_server
from tests.conformance.forwarder import bearer_forwarder

pytestmark = [pytest.mark.conformance, pytest.mark.slow]


def test_the_suite_scores_the_same_through_the_hop(tmp_path: Path) -> None:
    with conformance_server(tmp_path / "fixture.log") as url:
        direct = suite.run(url, "2026-07-28", tmp_path / "direct")
        with bearer_forwarder(url.removesuffix("/mcp"), "any-token") as hop:
            through_hop = suite.run(f"{hop}/mcp", "2026-07-28", tmp_path / "hop")

    scored = {key: check.status for key, check in direct.items() if check.scored}
    assert len(scored) > 100
    assert {key: through_hop[key].status for key in scored if key in through_hop} == scored
