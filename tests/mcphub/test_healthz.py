"""GET /healthz: database and Redis reachability, open without login."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import free_port, http_get, hub_env, run_web


@pytest.mark.django_db
def test_healthy_hub_answers_200_with_latencies(client: Client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["down"] == []
    for name in ("database", "redis"):
        assert body[name]["ok"] is True
        assert body[name]["latency_ms"] >= 0


@pytest.mark.django_db
def test_healthz_needs_no_login_and_reveals_nothing_else(client: Client) -> None:
    body = client.get("/healthz").json()

    assert set(body) == {"status", "down", "database", "redis"}


def test_healthz_is_read_only(client: Client) -> None:
    assert client.post("/healthz").status_code == 405


@pytest.mark.slow
@pytest.mark.django_db
def test_database_down_gives_503_naming_it() -> None:
    # Nothing listens on the port: a real refused connection, in a real web process.
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    with run_web(hub_env(DATABASE_URL=dead)) as server:
        response = http_get(server.url + "/healthz")

    assert response.status == 503
    body = response.json()
    assert body["down"] == ["database"]
    assert body["database"]["ok"] is False
    assert body["database"]["error"]
    assert body["redis"]["ok"] is True


@pytest.mark.slow
@pytest.mark.django_db
def test_redis_down_gives_503_naming_it() -> None:
    dead = f"redis://127.0.0.1:{free_port()}"
    with run_web(hub_env(REDIS_URL=dead)) as server:
        response = http_get(server.url + "/healthz")

    assert response.status == 503
    body = response.json()
    assert body["down"] == ["redis"]
    assert body["redis"]["ok"] is False
    assert body["database"]["ok"] is True
