"""GET /api/status/: rows and metrics, auth, bad parameters, the Redis cache (hit, miss, Redis down)."""

from __future__ import annotations

import json
import socket
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client, override_settings
from django.utils import timezone
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

from monitoring.conf import monitoring_conf
from monitoring.models import HealthCheck, MetricBucket
from monitoring.services import STATUS_CACHE_KEY, STATUS_JSON_KEY, clear_status_cache, status_overview
from servers import services
from servers.models import McpServer
from tests.monitoring.status_helpers import set_status, stdio_server


def bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


@pytest.fixture
def servers(db: None) -> tuple[McpServer, McpServer]:
    now = timezone.now()
    alpha = stdio_server("alpha", last_checked_at=now)
    beta = stdio_server("beta")
    set_status(alpha, "up")
    HealthCheck.objects.create(server=alpha, checked_at=now - timedelta(seconds=30), ok=True, latency_ms=9.0)
    HealthCheck.objects.create(server=alpha, checked_at=now, ok=True, latency_ms=12.345)
    minute = now.replace(second=0, microsecond=0)
    for ago, tool, count, ok, p95 in ((1, "echo", 30, 27, 10.0), (2, "echo", 10, 10, 50.0), (3, "add", 10, 8, 20.0)):
        MetricBucket.objects.create(
            server_id=alpha.pk,
            server_slug="alpha",
            tool=tool,
            bucket=minute - timedelta(minutes=ago),
            count=count,
            ok=ok,
            tool_error=count - ok,
            latency_p95=p95,
        )
    # Outside the 5-minute window, and an hourly bucket: neither counts.
    MetricBucket.objects.create(
        server_id=alpha.pk, server_slug="alpha", tool="echo", bucket=minute - timedelta(minutes=20), count=999, ok=0
    )
    MetricBucket.objects.create(
        server_id=alpha.pk, server_slug="alpha", tool="echo", resolution="hour", bucket=minute, count=999
    )
    return alpha, beta


@pytest.fixture
def staff(client: Client, admin_user: User) -> Client:
    client.force_login(admin_user)
    return client


def test_status_rows_with_latency_and_call_metrics(staff: Client, servers: tuple[McpServer, McpServer]) -> None:
    response = staff.get("/api/status/")

    assert response.status_code == 200
    body = response.json()
    assert body["window_minutes"] == 5
    alpha, beta = body["servers"]
    assert (alpha["slug"], alpha["name"], alpha["status"]) == ("alpha", "alpha", "up")
    assert alpha["latency_ms"] == 12.35  # the last check
    assert alpha["last_checked_at"] is not None and alpha["status_changed_at"] is not None
    assert alpha["calls_per_minute"] == 10.0  # 50 calls in 5 minutes
    assert alpha["error_rate"] == 0.1  # 5 of 50 not ok
    assert alpha["p95_ms"] == 20.0  # (30*10 + 10*50 + 10*20) / 50
    assert beta["status"] == "unknown"
    assert (beta["latency_ms"], beta["last_checked_at"], beta["error_rate"], beta["p95_ms"]) == (None, None, None, None)
    assert beta["calls_per_minute"] == 0


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "*/*"])
def test_answers_json_whatever_the_accept_header(
    staff: Client, servers: tuple[McpServer, McpServer], accept: str
) -> None:
    for url in ("/api/status/", "/api/status/?server=alpha", "/api/health/"):
        response = staff.get(url, HTTP_ACCEPT=accept)

        assert response.status_code == 200
        assert response["Content-Type"].startswith("application/json")
        assert response.json()


def test_disabled_servers_are_not_listed(staff: Client, servers: tuple[McpServer, McpServer]) -> None:
    McpServer.objects.filter(slug="beta").update(enabled=False)

    assert [row["slug"] for row in staff.get("/api/status/").json()["servers"]] == ["alpha"]


def test_filters(staff: Client, servers: tuple[McpServer, McpServer]) -> None:
    assert [r["slug"] for r in staff.get("/api/status/?status=unknown").json()["servers"]] == ["beta"]
    assert [r["slug"] for r in staff.get("/api/status/?server=alpha").json()["servers"]] == ["alpha"]
    assert staff.get("/api/status/?server=alpha&status=down").json()["servers"] == []


@pytest.mark.parametrize(
    ("query", "field", "reason"),
    [
        ("status=fine", "status", '"fine" is not a valid choice.'),
        ("server=Not%20A%20Slug", "server", "Use lowercase letters, digits and hyphens only."),
        ("bogus=1", "detail", "unknown query parameter(s): bogus"),
        ("status=", "status", '"" is not a valid choice.'),
        ("server=%00", "server", "Use lowercase letters, digits and hyphens only."),
    ],
)
def test_bad_parameters_answer_400_with_the_reason(
    staff: Client, servers: tuple[McpServer, McpServer], query: str, field: str, reason: str
) -> None:
    response = staff.get(f"/api/status/?{query}")

    assert response.status_code == 400
    detail = response.json()[field]
    assert reason in (detail if isinstance(detail, str) else detail[0])


@pytest.mark.django_db
def test_anonymous_is_refused(client: Client) -> None:
    assert client.get("/api/status/").status_code in (401, 403)


@pytest.mark.django_db
def test_logged_in_non_staff_is_refused(client: Client) -> None:
    client.force_login(User.objects.create_user("someone", password="x"))

    assert client.get("/api/status/").status_code == 403


def test_tokens_read_and_see_only_their_servers(client: Client, servers: tuple[McpServer, McpServer]) -> None:
    _token, everything = services.create_token("all")
    _token, only_beta = services.create_token("beta only", ["beta"])

    assert [r["slug"] for r in client.get("/api/status/", **bearer(everything)).json()["servers"]] == ["alpha", "beta"]
    assert [r["slug"] for r in client.get("/api/status/", **bearer(only_beta)).json()["servers"]] == ["beta"]
    assert client.get("/api/status/", **bearer("mcphub_wrong")).status_code == 401


# --- the cache ---------------------------------------------------------------------------------------


def test_a_miss_computes_and_stores_then_hits_serve_the_cache(
    staff: Client, servers: tuple[McpServer, McpServer]
) -> None:
    assert cache.get(STATUS_CACHE_KEY) is None

    first = staff.get("/api/status/").json()

    assert cache.get(STATUS_CACHE_KEY) == first  # stored by the miss, as data and as rendered JSON
    assert json.loads(cache.get(STATUS_JSON_KEY)) == first
    McpServer.objects.filter(slug="beta").update(status="down")  # behind the cache's back
    assert staff.get("/api/status/").json() == first  # a hit: still the cached answer
    clear_status_cache()
    assert staff.get("/api/status/").json()["servers"][1]["status"] == "down"  # a miss again: fresh


def test_the_cache_expires_after_its_ttl(servers: tuple[McpServer, McpServer]) -> None:
    status_overview()
    ttl = cache.ttl(STATUS_CACHE_KEY)
    assert 0 < ttl <= monitoring_conf().status_cache_ttl
    McpServer.objects.filter(slug="beta").update(status="down")

    time.sleep(monitoring_conf().status_cache_ttl + 0.5)

    assert status_overview()["servers"][1]["status"] == "down"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


def test_with_redis_down_the_status_comes_from_the_database(
    client: Client, servers: tuple[McpServer, McpServer]
) -> None:
    _token, secret = services.create_token("all")  # token auth: the session store would need Redis
    dead = {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{closed_port()}/0"}

    with override_settings(CACHES={"default": dead}):
        with pytest.raises((ConnectionInterrupted, RedisError)):  # really down: the cache itself raises
            cache.get(STATUS_CACHE_KEY)
        response = client.get("/api/status/", **bearer(secret))
        McpServer.objects.filter(slug="beta").update(status="down")
        again = client.get("/api/status/", **bearer(secret))

    assert response.status_code == 200
    assert [row["slug"] for row in response.json()["servers"]] == ["alpha", "beta"]
    assert again.json()["servers"][1]["status"] == "down"  # computed afresh each time
