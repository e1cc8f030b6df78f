"""The web process as the Procfile runs it (uvicorn, lifespan on), started and stopped with real signals.

Start: the gateway starts with the server (under a server without lifespan, at the first /mcp
request); spooled request-log records are written at once, without waiting for a call.
Stop (SIGTERM): every answered call is in the table, also right after a burst, and the
process ends promptly even while clients hold a stream or a keep-alive connection open.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from honcho.manager import KILL_WAIT

from logs.writer import LogRecord
from servers import services
from tests.conftest import LiveServer, http_get, hub_env, run_web, wait_for
from tests.gateway.conftest import MODERN_META, modern_headers, register_fixture, stateless_call
from tests.gateway.test_auth import INITIALIZE

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BURST = 100


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A hub with a var folder (so a request-log spool) of its own; the same key decrypts the servers' secrets."""
    return hub_env(MCPHUB_VAR_DIR=str(tmp_path / "var"), SECRET_KEY=settings.SECRET_KEY, **extra)


# Its writer waits an hour before writing a batch: the records of a burst are all still queued at SIGTERM.
SHUTDOWN_ONLY = "tests.gateway.shutdown_only_settings"


def _rows() -> tuple[int, int]:
    """Request-log rows and distinct request ids among them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT request_id) FROM logs_requestlog")
        total, distinct = cursor.fetchone()
        return int(total), int(distinct)


def _burst(hub: LiveServer, token: str) -> int:
    """BURST calls from 8 clients at once; the number answered."""
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: stateless_call(hub.url + "/mcp", token, i), range(BURST)))
    return sum(1 for result in results if result["content"][0]["text"])


def _sigterm_and_time(hub: LiveServer) -> float:
    """SIGTERM 0.1 s after the last answer; seconds until the process is gone."""
    time.sleep(0.1)
    started = time.monotonic()
    hub.process.send_signal(signal.SIGTERM)
    try:
        hub.process.wait(timeout=60)
    except Exception:
        raise AssertionError("the web process did not stop within 60 s of SIGTERM") from None
    return time.monotonic() - started


class HeldStream(threading.Thread):
    """A client holding a long-lived response stream open until the hub ends it; what it read, how it ended."""

    def __init__(self, method: str, url: str, headers: dict[str, str], body: bytes | None = None) -> None:
        super().__init__(daemon=True)
        self.request = (method, url, headers, body)
        self.open = threading.Event()
        self.text = ""
        self.ended = ""  # "clean" or the error that ended the stream

    def run(self) -> None:
        method, url, headers, body = self.request
        try:
            with httpx2.stream(method, url, headers=headers, content=body, timeout=None) as response:
                assert response.status_code == 200
                self.open.set()
                for chunk in response.iter_text():
                    self.text += chunk
            self.ended = "clean"
        except Exception as error:
            self.ended = repr(error)
        self.open.set()

    @classmethod
    def handshake_get(cls, url: str, token: str) -> HeldStream:
        """A handshake-era session's GET stream (after initialize)."""
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
        post_headers = {**headers, "Content-Type": "application/json"}
        response = httpx2.post(url + "/mcp", content=INITIALIZE, headers=post_headers, timeout=30)
        assert response.status_code == 200, response.text
        headers |= {"Mcp-Session-Id": response.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
        initialized = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'
        response = httpx2.post(url + "/mcp", content=initialized, headers={**post_headers, **headers}, timeout=30)
        assert response.status_code == 202, response.text
        return cls("GET", url + "/mcp", headers)

    @classmethod
    def listen(cls, url: str, token: str) -> HeldStream:
        """A 2026-07-28 `subscriptions/listen` stream."""
        headers = modern_headers(token, "") | {"Mcp-Method": "subscriptions/listen"}
        del headers["Mcp-Name"]
        params = {"notifications": {"toolsListChanged": True}, "_meta": MODERN_META}
        body = {"jsonrpc": "2.0", "id": "listen-1", "method": "subscriptions/listen", "params": params}
        return cls("POST", url + "/mcp", headers, json.dumps(body).encode())


@pytest.fixture
def fixture_and_token() -> str:
    register_fixture("fixture")
    return services.create_token("lifespan")[1]


def _gateway_published(hub: LiveServer) -> bool:
    """Whether the process's gateway has published its upstream instances (it does so ~1 s after it starts)."""
    # The key format is the gateway's external name ("upstream-instances:<host>:<pid>"), read by monitoring.
    return cache.get(f"upstream-instances:{socket.gethostname()}:{hub.process.pid}") is not None


@pytest.mark.parametrize("daphne", [False, True], ids=["lifespan", "no-lifespan"])
def test_the_gateway_starts_with_the_server_or_at_the_first_mcp_request(
    fixture_and_token: str, tmp_path: Path, daphne: bool
) -> None:
    with run_web(_env(tmp_path), daphne=daphne) as hub:
        if not daphne:
            wait_for(lambda: _gateway_published(hub), timeout=30, what="the gateway to start with the server")
            return
        time.sleep(3)  # daphne ignores lifespan: nothing starts the gateway before a request for /mcp
        assert not _gateway_published(hub)
        auth = {"Authorization": f"Bearer {fixture_and_token}"}
        assert http_get(hub.url + "/api/servers/", headers=auth).status == 200  # not a request for /mcp
        assert not _gateway_published(hub)

        result = stateless_call(hub.url + "/mcp", fixture_and_token, 1)

        assert result["content"][0]["text"] == "2"
        wait_for(lambda: _gateway_published(hub), timeout=30, what="the gateway started by the first /mcp call")


def test_spooled_records_are_written_at_start_without_a_call(tmp_path: Path) -> None:
    spool = tmp_path / "var" / "logs-spool"
    spool.mkdir(parents=True)
    records = [LogRecord(outcome="ok", server_slug="spooled", tool=f"t{i}") for i in range(25)]
    # As a process that stopped while PostgreSQL was down leaves them (pid 1: never this test's).
    (spool / "1-1-left.jsonl").write_text("".join(json.dumps(r.to_json()) + "\n" for r in records))

    with run_web(_env(tmp_path)):
        wait_for(lambda: _rows() == (25, 25), timeout=30, what="the spool to be replayed with no call made")

    assert not any(spool.glob("*.jsonl*"))


def test_sigterm_right_after_a_burst_writes_every_answered_call(fixture_and_token: str, tmp_path: Path) -> None:
    with run_web(_env(tmp_path, DJANGO_SETTINGS_MODULE=SHUTDOWN_ONLY)) as hub:
        answered = _burst(hub, fixture_and_token)
        seconds = _sigterm_and_time(hub)
    print(f"burst of {BURST}: {answered} answered; stopped {seconds:.2f} s after SIGTERM; rows {_rows()[0]}")

    with run_web(_env(tmp_path)):  # a restart (it would replay anything spooled)
        wait_for(lambda: _rows()[0] >= answered, timeout=30, what="a row per answered call")
        assert _rows() == (answered, answered) == (BURST, BURST)


def test_sigterm_with_clients_connected_stops_promptly_and_writes_every_call(
    fixture_and_token: str, tmp_path: Path
) -> None:
    with run_web(_env(tmp_path, DJANGO_SETTINGS_MODULE=SHUTDOWN_ONLY)) as hub:
        streams = [HeldStream.handshake_get(hub.url, fixture_and_token), HeldStream.listen(hub.url, fixture_and_token)]
        for stream in streams:
            stream.start()
            assert stream.open.wait(30) and not stream.ended, stream.ended
        keep_alive = httpx2.Client()  # one call, then its connection stays open (idle keep-alive)
        stateless_call(hub.url + "/mcp", fixture_and_token, 0, http=keep_alive)
        try:
            answered = 1 + _burst(hub, fixture_and_token)
            seconds = _sigterm_and_time(hub)
        finally:
            keep_alive.close()
        for stream in streams:
            stream.join(30)
    print(f"with a GET stream, a listen stream and a keep-alive connection open: stopped {seconds:.2f} s after SIGTERM")

    assert seconds < KILL_WAIT  # before honcho (`make run`) would SIGKILL it
    # The hub ended the streams, not a cut connection; the listen stream with its final result.
    assert [stream.ended for stream in streams] == ["clean", "clean"]
    assert '"id":"listen-1","result"' in streams[1].text.replace(" ", ""), streams[1].text
    wait_for(lambda: _rows()[0] >= answered, timeout=30, what="a row per answered call")
    assert _rows() == (answered, answered)


def test_sigterm_during_a_long_call_answers_503_and_stops_after_the_grace(
    fixture_and_token: str, tmp_path: Path
) -> None:
    with run_web(_env(tmp_path, DJANGO_SETTINGS_MODULE=SHUTDOWN_ONLY)) as hub:
        slow = ThreadPoolExecutor(1)
        # A call that would run 50 s (its server allows 60 s): the stop must not wait for it.
        long_call = slow.submit(
            httpx2.post,
            hub.url + "/mcp",
            content=json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": "long",
                    "method": "tools/call",
                    "params": {"name": "fixture__slow", "arguments": {"seconds": 50}, "_meta": MODERN_META},
                }
            ),
            headers=modern_headers(fixture_and_token, "fixture__slow"),
            timeout=120,
        )
        answered = _burst(hub, fixture_and_token)  # meanwhile the long call is in flight
        seconds = _sigterm_and_time(hub)
        slow.shutdown(wait=False)
    print(f"with a 50 s call in flight: stopped {seconds:.2f} s after SIGTERM")

    assert seconds < 15  # the hub's STOP_GRACE (2 s), then the lifespan shutdown
    cut = long_call.result(timeout=60)
    assert (cut.status_code, cut.headers.get("retry-after")) == (503, "1"), cut.text  # not uvicorn's 500
    total, distinct = _rows()
    assert total == distinct
    assert answered <= total <= answered + 1  # the cut call may be recorded too (as cancelled)
