"""PostgreSQL or Redis stopped under load, then started again: calls keep flowing, no 5xx, every call recorded once.

And the web process stopped while PostgreSQL is down: what it spooled is written by the next one at start.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest

from tests.faults.conftest import Backing, Hub, Token, new_token, settled_rows
from tests.faults.load import Call, call_once, figures, load

pytestmark = [pytest.mark.faults, pytest.mark.slow]

BEFORE = 3.0  # seconds of load before the outage
OUTAGE = 12.0  # longer than the token cache (10 s): calls during it need the database for a token check
AFTER = 6.0  # seconds of load after the restart


def outage_under_load(
    hub: Hub, token: Token, stop: Callable[[], None], start: Callable[[], None], meanwhile: Callable[[], None]
) -> tuple[list[Call], float, float]:
    """Load; `stop`; OUTAGE seconds (`meanwhile` runs at the end); `start`; load on.

    Returns the calls and the outage's [down, up).
    """
    with load(hub.url, token.secret) as running:
        time.sleep(BEFORE)
        down = time.monotonic()
        stop()
        time.sleep(OUTAGE)
        meanwhile()
        start()
        up = time.monotonic()
        time.sleep(AFTER)
    return running.calls, down, up


@pytest.mark.parametrize("service", ["postgres", "redis"])
def test_an_outage_under_load_costs_no_call_and_no_record(
    backing: Backing, hub: Hub, token: Token, service: str
) -> None:
    server = backing.postgres if service == "postgres" else backing.redis
    unused = new_token(backing, f"unused before the {service} outage")
    unknown: dict[str, httpx2.Response] = {}

    def try_unknown_tokens() -> None:
        for label, secret in (("a valid token this process never saw", unused.secret), ("a wrong token", "wrong")):
            unknown[label] = call_once(hub.url, secret, "fixture__echo", {"text": "hi"})

    calls, down, up = outage_under_load(hub, token, server.stop, server.start, try_unknown_tokens)

    during, total = figures(calls, down, up), figures(calls)
    rows = settled_rows(backing, token, calls)
    print(f"\n{service} down {up - down:.1f} s under load")
    print(f"  during the outage: {during}")
    print(f"  whole run:         {total}")
    print(f"  rows:              {rows}")
    log = hub.log.read_text(errors="replace").splitlines()
    tracebacks = sum("Traceback" in line for line in log)
    print(f"  web process log:   {len(log)} lines (warnings and up), {tracebacks} tracebacks")
    for label, response in unknown.items():
        print(f"  {label}: HTTP {response.status_code}, Retry-After {response.headers.get('retry-after')}")
    assert total.server_errors == 0, f"5xx answers: {total}"
    assert during.calls > 0 and during.answered == during.calls, f"calls not served during the outage: {during}"
    assert total.answered == total.calls, f"calls not served: {total}"
    assert not rows.missing, f"answered calls without a row: {rows}"
    assert not rows.duplicates and not rows.strays, f"doubled or stray rows: {rows}"
    # A token the process cannot check: "try again later" (PostgreSQL down), or the answer (Redis down).
    valid, wrong = unknown.values()
    if service == "postgres":
        assert [valid.status_code, wrong.status_code] == [503, 503] and valid.headers.get("retry-after")
    else:
        assert [valid.status_code, wrong.status_code] == [200, 401]


def test_records_spooled_in_an_outage_are_written_by_the_next_start(backing: Backing, hub: Hub, token: Token) -> None:
    """PostgreSQL down, calls, SIGTERM (records spooled), PostgreSQL up, a new process: the rows come without a call."""
    with load(hub.url, token.secret) as running:
        time.sleep(2)
        backing.postgres.stop()
        time.sleep(5)  # within the token cache's 10 s: the calls are served either way
    hub.signal(signal.SIGTERM)
    seconds = hub.wait_exit(30)
    hub.kill_all()
    spool = Path(hub.env["MCPHUB_VAR_DIR"]) / "logs-spool"
    spooled = len(list(spool.iterdir()))
    backing.postgres.start()
    hub.start()  # and no call to it from here on

    rows = settled_rows(backing, token, running.calls)
    print(f"\nSIGTERM during a PostgreSQL outage: {figures(running.calls)}; exited after {seconds} s")
    print(f"  {spooled} spool files; after the restart, without traffic: {rows}")
    assert figures(running.calls).server_errors == 0
    assert not rows.missing, f"answered calls without a row: {rows}"
    assert not rows.duplicates and not rows.strays, f"doubled or stray rows: {rows}"
    assert not list(spool.iterdir()), "spool files left after the replay"
