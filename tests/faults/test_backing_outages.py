"""PostgreSQL or Redis stopped under load, then started again: calls keep flowing, no 5xx, every call recorded once."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.faults.conftest import Backing, Hub, Token, settled_rows
from tests.faults.load import figures, load

pytestmark = [pytest.mark.faults, pytest.mark.slow]

BEFORE = 3.0  # seconds of load before the outage
OUTAGE = 12.0  # longer than the token cache (10 s): calls during it need the database for a token check
AFTER = 6.0  # seconds of load after the restart


def outage_under_load(hub: Hub, token: Token, stop: Callable[[], None], start: Callable[[], None]) -> tuple:
    """Load; `stop`; OUTAGE seconds; `start`; load on. Returns the calls and the outage's [down, up)."""
    with load(hub.url, token.secret) as running:
        time.sleep(BEFORE)
        down = time.monotonic()
        stop()
        time.sleep(OUTAGE)
        start()
        up = time.monotonic()
        time.sleep(AFTER)
    return running.calls, down, up


@pytest.mark.parametrize("service", ["postgres", "redis"])
def test_an_outage_under_load_costs_no_call_and_no_record(
    backing: Backing, hub: Hub, token: Token, service: str
) -> None:
    server = backing.postgres if service == "postgres" else backing.redis
    calls, down, up = outage_under_load(hub, token, server.stop, server.start)

    during, total = figures(calls, down, up), figures(calls)
    rows = settled_rows(backing, token, calls)
    print(f"\n{service} down {up - down:.1f} s under load")
    print(f"  during the outage: {during}")
    print(f"  whole run:         {total}")
    print(f"  rows:              {rows}")
    assert total.server_errors == 0, f"5xx answers: {total}"
    assert during.calls > 0 and during.answered == during.calls, f"calls not served during the outage: {during}"
    assert total.answered == total.calls, f"calls not served: {total}"
    assert not rows.missing, f"answered calls without a row: {rows}"
    assert not rows.duplicates and not rows.strays, f"doubled or stray rows: {rows}"
