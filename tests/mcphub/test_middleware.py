"""A database outage while the web process runs: its Django views answer 503 with Retry-After, never 500.

The web process (the Procfile's command) reaches PostgreSQL through a loopback proxy the test
cuts: the database goes away for that process only, never for the machine.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from tests.conftest import LiveServer, http_get, hub_env, run_web
from tests.servers.api_helpers import make_server

pytestmark = pytest.mark.slow


class CutProxy:
    """A TCP proxy to the test database; ``cut()`` closes it and every connection through it."""

    def __init__(self) -> None:
        db = settings.DATABASES["default"]
        host = db.get("OPTIONS", {}).get("host") or db.get("HOST") or "127.0.0.1"  # as tests.conftest finds it
        port = int(db.get("PORT") or 5432)
        # The embedded PostgreSQL listens on a Unix socket in its data directory.
        self.target: str | tuple[str, int] = f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self) -> str:
        db = settings.DATABASES["default"]
        return f"postgresql://{db['USER']}@127.0.0.1:{self.port}/{db['NAME']}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # cut
            family = socket.AF_UNIX if isinstance(self.target, str) else socket.AF_INET
            upstream = socket.socket(family, socket.SOCK_STREAM)
            upstream.connect(self.target)
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)

    def cut(self) -> None:
        for sock in [self.listener, *self.sockets]:  # shutdown, not just close: it wakes the blocked accept()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture
def proxied_web(transactional_db: None) -> Iterator[tuple[LiveServer, CutProxy]]:
    proxy = CutProxy()
    try:
        with run_web(hub_env(DATABASE_URL=proxy.url()), procfile=True) as server:
            yield server, proxy
    finally:
        proxy.cut()


def test_views_answer_503_with_retry_after_while_the_database_is_away(
    proxied_web: tuple[LiveServer, CutProxy], admin_user: User
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
