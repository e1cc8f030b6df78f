"""A database outage while the web process runs: its Django views answer 503 with Retry-After, never 500.

The web process (the Procfile's command) reaches PostgreSQL through a loopback proxy the test
cuts: the database goes away for that process only, never for the machine.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from tests.conftest import LiveServer, http_get, hub_env, live_database_url, run_web
from tests.gateway.conftest import TcpProxy, tcp_proxy
from tests.servers.api_helpers import make_server

pytestmark = pytest.mark.slow


@pytest.fixture
def proxied_web(transactional_db: None) -> Iterator[tuple[LiveServer, TcpProxy]]:
    with (
        tcp_proxy(live_database_url()) as (proxy, database_url),
        run_web(hub_env(DATABASE_URL=database_url)) as server,
    ):
        yield server, proxy


def test_views_answer_503_with_retry_after_while_the_database_is_away(
    proxied_web: tuple[LiveServer, TcpProxy], admin_user: User
) -> None:
    server, proxy = proxied_web
    make_server("alpha")
    client = Client()
    client.force_login(admin_user)
    cookie = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"}
    assert http_get(server.url + "/api/servers/", headers=cookie).status == 200

    proxy.cut()

    for path in ("/api/servers/", "/api/tools/", "/admin/servers/mcpserver/", "/"):
        response = http_get(server.url + path, timeout=30, headers=cookie)
        assert response.status == 503, (path, response.status, response.body[:300])
        assert {name.lower(): value for name, value in response.headers.items()}["retry-after"] == "5"
        assert response.json() == {"detail": "The database is unavailable; retry later."}
    assert "Internal Server Error" not in server.log.read_text(errors="replace")
