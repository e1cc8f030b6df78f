"""GET /api/health/: healthy/total, 200 or 503, auth, bad parameters, Redis down."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client, override_settings

from servers import services
from tests.monitoring.status_helpers import set_status, stdio_server
from tests.monitoring.test_status_api import bearer, closed_port


@pytest.fixture
def staff(client: Client, admin_user: User) -> Client:
    client.force_login(admin_user)
    return client


@pytest.mark.django_db
def test_healthy_counts_up_and_degraded(staff: Client) -> None:
    for slug, status in (("a", "up"), ("b", "degraded"), ("c", "down"), ("d", "unknown")):
        set_status(stdio_server(slug), status)
    stdio_server("off", enabled=False)

    response = staff.get("/api/health/")

    assert response.status_code == 200
    body = response.json()
    assert (body["healthy"], body["total"]) == (2, 4)
    assert body["counts"] == {"up": 1, "degraded": 1, "down": 1, "unknown": 1}


@pytest.mark.django_db
def test_503_when_no_server_is_healthy(staff: Client) -> None:
    set_status(stdio_server("a"), "down")
    stdio_server("b")  # unknown

    response = staff.get("/api/health/")

    assert response.status_code == 503
    assert (response.json()["healthy"], response.json()["total"]) == (0, 2)


@pytest.mark.django_db
def test_no_servers_is_not_an_outage(staff: Client) -> None:
    response = staff.get("/api/health/")

    assert response.status_code == 200
    assert (response.json()["healthy"], response.json()["total"]) == (0, 0)


@pytest.mark.django_db
def test_a_restricted_token_counts_its_own_servers(client: Client) -> None:
    set_status(stdio_server("a"), "up")
    set_status(stdio_server("b"), "down")
    _token, only_b = services.create_token("b only", ["b"])
    _token, everything = services.create_token("all")

    assert client.get("/api/health/", **bearer(everything)).json()["healthy"] == 1
    response = client.get("/api/health/", **bearer(only_b))
    assert response.status_code == 503
    assert (response.json()["healthy"], response.json()["total"]) == (0, 1)


@pytest.mark.django_db
def test_auth(client: Client) -> None:
    assert client.get("/api/health/").status_code in (401, 403)
    assert client.get("/api/health/", **bearer("mcphub_nope")).status_code == 401
    client.force_login(User.objects.create_user("someone", password="x"))
    assert client.get("/api/health/").status_code == 403


@pytest.mark.django_db
def test_unknown_parameters_answer_400(staff: Client) -> None:
    response = staff.get("/api/health/?verbose=1")

    assert response.status_code == 400
    assert response.json() == {"detail": "unknown query parameter(s): verbose"}


@pytest.mark.django_db
def test_with_redis_down_health_comes_from_the_database(client: Client) -> None:
    set_status(stdio_server("a"), "up")
    _token, secret = services.create_token("all")
    dead = {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{closed_port()}/0"}

    with override_settings(CACHES={"default": dead}):
        response = client.get("/api/health/", **bearer(secret))

    assert response.status_code == 200
    assert (response.json()["healthy"], response.json()["total"]) == (1, 1)
