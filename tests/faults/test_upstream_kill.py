"""Upstream servers killed (kill -9) under load: every call still answered, calls succeed again soon after."""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import Backing, HttpUpstream, Hub, Token, settled_rows
from tests.faults.load import Call, figures, load

pytestmark = [pytest.mark.faults, pytest.mark.slow]

RECOVERY_BOUND = 15.0  # seconds after the upstream is back (HTTP) or killed (stdio) until calls succeed again


def recovered_at(calls: list[Call], tool: str, since: float) -> float | None:
    """When calls to `tool` started succeeding for good (every later one a result without isError)."""
    mine = sorted((call for call in calls if call.tool == tool and call.started >= since), key=lambda c: c.started)
    failed = [call for call in mine if not (call.result and not call.result.get("isError"))]
    later = [call for call in mine if not failed or call.started > failed[-1].started]
    return later[0].started if later else None


def test_upstreams_killed_under_load_every_call_is_answered(
    backing: Backing, hub: Hub, token: Token, http_upstream: HttpUpstream
) -> None:
    with load(hub.url, token.secret) as running:
        time.sleep(3)
        killed = time.monotonic()
        stdio = hub.stdio_upstreams()
        for process in stdio:
            process.kill()
        http_upstream.kill()
        time.sleep(2)
        http_upstream.start()
        back = time.monotonic()
        time.sleep(RECOVERY_BOUND)

    calls = running.calls
    during = figures(calls, killed, back)
    stdio_ok = recovered_at(calls, "fixture__echo", killed)
    http_ok = recovered_at(calls, "web__echo", back)
    rows = settled_rows(backing, token, calls)
    print(f"\n{len(stdio)} stdio upstream process(es) and the HTTP upstream killed under load; HTTP back after 2 s")
    print(f"  until the HTTP upstream was back: {during}")
    print(f"  whole run: {figures(calls)}")
    print(f"  stdio calls succeed again {stdio_ok and stdio_ok - killed:.1f} s after the kill")
    print(f"  HTTP calls succeed again {http_ok and http_ok - back:.1f} s after the restart")
    print(f"  rows: {rows}")
    assert stdio, "no stdio upstream process found to kill"
    assert figures(calls).server_errors == 0
    unanswered = [call for call in calls if not call.result]
    assert not unanswered, f"{len(unanswered)} calls without a result or tool error, e.g. {unanswered[0]}"
    assert stdio_ok is not None and stdio_ok - killed <= RECOVERY_BOUND - 5, "stdio calls did not recover"
    assert http_ok is not None and http_ok - back <= RECOVERY_BOUND - 5, "HTTP calls did not recover"
    assert not rows.missing and not rows.duplicates and not rows.strays, f"rows: {rows}"
