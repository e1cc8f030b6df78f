"""/mcp while PostgreSQL or Redis is unreachable: calls keep flowing, no 5xx, one log line per outage.

The hub (the Procfile's uvicorn command) reaches the test's real PostgreSQL or Redis through a
loopback TCP proxy that the test cuts (open connections dropped, new ones refused) and restores.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import httpx2
import pytest
from django.conf import settings
from django.utils import timezone

from servers import services
from servers.models import AccessToken
from servers.tokens import TOKEN_CACHE_SECONDS
from tests.conftest import live_database_url, wait_for
from tests.gateway.conftest import Hub, answer, live_hub, tcp_proxy, tool_call

pytestmark = pytest.mark.slow


def _calls_for(hub: Hub, seconds: float) -> list[httpx2.Response]:
    """Stateless-era calls one after the other for `seconds`."""
    responses = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        responses.append(hub.call("fixture__add", {"a": len(responses), "b": 1}, len(responses)))
        time.sleep(0.05)
    return responses


def _assert_all_answered(responses: list[httpx2.Response]) -> None:
    assert [r.status_code for r in responses] == [200] * len(responses)
    sums = [answer(r)["result"]["content"][0]["text"] for r in responses]
    assert sums == [str(i + 1) for i in range(len(responses))]


def _log(hub: Hub) -> str:
    return Path(hub.server.log).read_text(errors="replace")


@pytest.fixture
def newcomer(transactional_db: None) -> str:
    """A valid token that the hub is not shown before the outage."""
    return services.create_token("newcomer")[1]


EXPIRES_IN = 8  # seconds: a token shown to the hub just before the outage expires during it


def test_database_outage_known_token_keeps_calling_unknown_token_gets_503(newcomer: str) -> None:
    with (
        tcp_proxy(live_database_url()) as (proxy, database_url),
        live_hub(DATABASE_URL=database_url) as hub,
    ):
        session_id = hub.open_session()  # a handshake-era session, opened before the outage
        _assert_all_answered(_calls_for(hub, 1))
        token, expiring = services.create_token("expiring")
        AccessToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() + timedelta(seconds=EXPIRES_IN))
        expires = time.monotonic() + EXPIRES_IN
        before_expiry = hub.call("fixture__add", {"a": 1, "b": 1}, Authorization=f"Bearer {expiring}")

        proxy.cut()
        during = _calls_for(hub, TOKEN_CACHE_SECONDS + 5)  # past the token cache's expiry
        handshake = hub.in_session(session_id, tool_call("fixture__echo", {"text": "during"}))
        time.sleep(max(0.0, expires + 1 - time.monotonic()))
        after_expiry = hub.call("fixture__add", {"a": 1, "b": 1}, Authorization=f"Bearer {expiring}")
        refused = hub.call("fixture__add", {"a": 1, "b": 1}, Authorization=f"Bearer {newcomer}")
        wrong = hub.call("fixture__add", {"a": 1, "b": 1}, Authorization="Bearer never-issued")
        log_during = _log(hub)

        proxy.restore()
        accepted = wait_for(
            lambda: (
                (r := hub.call("fixture__add", {"a": 2, "b": 2}, Authorization=f"Bearer {newcomer}")).status_code == 200
                and r
            ),
            timeout=60,
            what="the new token to be accepted once the database is back",
        )
        wait_for(lambda: "PostgreSQL reachable again" in _log(hub), timeout=30, what="the recovery log line")
        log = _log(hub)

    print(f"database outage: {len(during)} calls with a known token, all answered")
    _assert_all_answered(during)
    assert handshake.status_code == 200 and "during" in handshake.text
    assert before_expiry.status_code == 200
    assert after_expiry.status_code == 401  # known, but its expiry date passed during the outage
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert "unreachable" in refused.json()["error"]
    assert wrong.status_code == 503  # unknown to this process: a wrong token cannot be told from a new one
    assert answer(accepted)["result"]["content"][0]["text"] == "4"
    assert "Traceback" not in log and "Exception in ASGI application" not in log
    assert log_during.count("PostgreSQL unreachable") == 1
    assert log.count("PostgreSQL unreachable") == 1
    assert log.count("PostgreSQL reachable again") == 1


def test_redis_outage_is_one_warning_and_one_line_when_back(transactional_db: None) -> None:
    with tcp_proxy(settings.REDIS_URL) as (proxy, redis_url), live_hub(REDIS_URL=redis_url) as hub:
        _assert_all_answered(_calls_for(hub, 1))
        proxy.cut()
        during = _calls_for(hub, 8)  # several snapshot refreshes (1 s) and instance publications (5 s)
        wait_for(lambda: "Redis unreachable" in _log(hub), timeout=30, what="the outage warning")
        log_during = _log(hub)
        proxy.restore()
        wait_for(lambda: "Redis reachable again" in _log(hub), timeout=30, what="the recovery log line")
        after = _calls_for(hub, 1)
        log = _log(hub)

    print(f"redis outage: {len(during)} calls, all answered")
    _assert_all_answered(during)
    _assert_all_answered(after)
    assert "Traceback" not in log
    assert log_during.count("Redis unreachable") == 1
    assert log.count("Redis unreachable") == 1
    assert log.count("Redis reachable again") == 1
