"""GET /api/metrics/: series per window, merged percentiles flagged, auth matrix, 400s with the reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from monitoring.metrics import floor_to
from monitoring.models import MetricBucket
from servers.models import McpServer
from tests.servers.api_helpers import make_server, plain_user_client, staff_client, token_client

URL = "/api/metrics/"


def bucket(server: McpServer, tool: str, at: object, resolution: str = "minute", **values: float) -> MetricBucket:
    values = {"count": 10, "ok": 8, "tool_error": 2, "latency_p50": 5, "latency_p95": 50, "latency_p99": 90} | values
    return MetricBucket.objects.create(
        server_id=server.pk, server_slug=server.slug, tool=tool, resolution=resolution, bucket=at, **values
    )


@pytest.fixture
def data(db: None) -> dict[str, object]:
    alpha, beta = make_server("alpha"), make_server("beta")
    minute = floor_to(timezone.now(), "minute") - timedelta(minutes=5)
    hour = floor_to(timezone.now(), "hour") - timedelta(hours=3)
    bucket(alpha, "echo", minute)
    bucket(alpha, "sum", minute, count=30, ok=30, tool_error=0, latency_p95=10)
    bucket(beta, "fetch", minute, count=4, ok=0, tool_error=0, timeout=4)
    bucket(alpha, "echo", hour, resolution="hour", count=100, ok=99, tool_error=1)
    bucket(alpha, "echo", hour - timedelta(days=3), resolution="hour", count=7, ok=7, tool_error=0)
    return {"minute": minute, "hour": hour}


def point_at(body: dict, moment: object) -> dict:
    (point,) = [p for p in body["points"] if p["bucket"] == moment.isoformat().replace("+00:00", "Z")]
    return point


@pytest.fixture
def staff(admin_user: User) -> Client:
    return staff_client(admin_user)


@pytest.mark.django_db
def test_one_tool_over_the_last_hour(staff: Client, data: dict) -> None:
    response = staff.get(URL, {"server": "alpha", "tool": "echo", "window": "1h"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["resolution"] == "minute" and body["window"] == "1h" and body["server"] == "alpha"
    assert len(body["points"]) == 60
    assert body["exact_percentiles"] is True
    point = point_at(body, data["minute"])
    assert point | {"bucket": None} == {
        "bucket": None,
        "count": 10,
        "errors": 2,
        "error_rate": 0.2,
        "latency_avg": 0.0,
        "p50": 5.0,
        "p95": 50.0,
        "p99": 90.0,
        "latency_max": 0.0,
    }
    empty = [p for p in body["points"] if p["count"] == 0]
    assert len(empty) == 59 and empty[0]["p95"] is None and empty[0]["error_rate"] is None


@pytest.mark.django_db
def test_a_server_merges_its_tools_and_says_percentiles_are_approximate(staff: Client, data: dict) -> None:
    body = staff.get(URL, {"server": "alpha"}).json()

    point = point_at(body, data["minute"])
    assert point["count"] == 40 and point["errors"] == 2
    assert point["p95"] == pytest.approx((50 * 10 + 10 * 30) / 40)
    assert body["exact_percentiles"] is False


@pytest.mark.django_db
def test_hour_windows(staff: Client, data: dict) -> None:
    day = staff.get(URL, {"server": "alpha", "window": "24h"}).json()
    assert day["resolution"] == "hour" and len(day["points"]) == 24
    assert point_at(day, data["hour"])["count"] == 100
    assert sum(p["count"] for p in day["points"]) == 100

    week = staff.get(URL, {"server": "alpha", "window": "7d"}).json()
    assert len(week["points"]) == 168
    assert sum(p["count"] for p in week["points"]) == 107


@pytest.mark.django_db
def test_auth_matrix(client: Client, django_user_model: type[User], data: dict) -> None:
    assert client.get(URL).status_code == 401
    assert Client(HTTP_AUTHORIZATION="Bearer wrong").get(URL).status_code == 401
    assert plain_user_client(django_user_model).get(URL).status_code == 403

    def total(client: Client, **params: str) -> int:
        response = client.get(URL, params)
        assert response.status_code == 200, response.content
        return sum(p["count"] for p in response.json()["points"])

    assert total(token_client()) == 44
    limited = token_client("beta", name="limited")
    assert total(limited) == 4  # every server it may see: beta only
    assert total(limited, server="beta") == 4
    hidden = limited.get(URL, {"server": "alpha"})
    assert hidden.status_code == 400 and hidden.json() == {"server": ["Unknown server 'alpha'."]}
    assert token_client().post(URL).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"window": "2h"}, "window"),
        ({"server": "nope"}, "server"),
        ({"since": "2026-01-01"}, "detail"),
        ({"window": ""}, "window"),  # an empty value is a bad one, not the default
        ({"tool": "a\x00"}, "tool"),
    ],
)
def test_bad_parameters(staff: Client, data: dict, params: dict, field: str) -> None:
    response = staff.get(URL, params)

    assert response.status_code == 400
    assert field in response.json(), response.json()


@pytest.mark.django_db
def test_unknown_window_names_the_choices(staff: Client) -> None:
    assert staff.get(URL, {"window": "2h"}).json() == {"window": ['"2h" is not a valid choice.']}
