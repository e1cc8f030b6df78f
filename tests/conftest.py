"""Shared fixtures: real PostgreSQL and Redis (from the environment or embedded), live hub processes."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from mcphub import embedded

BASE_DIR = Path(__file__).resolve().parent.parent


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Settings started the embedded servers for this run if no URL was given: stop them again.
    embedded.stop(started_here_only=True)


@pytest.fixture(autouse=True)
def _clean_redis() -> Iterator[None]:
    """Each test starts with empty hub Redis databases (only ours: broker, cache, channel layer)."""
    import redis

    for url in (settings.REDIS_BROKER_URL, settings.REDIS_CACHE_URL, settings.REDIS_CHANNELS_URL):
        redis.Redis.from_url(url).flushdb()
    yield


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], object], timeout: float = 30.0, interval: float = 0.1, what: str = "") -> object:
    """Poll until `condition()` is truthy; fail with `what` after `timeout` seconds (generous on a busy CI)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if result := condition():
                return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


@dataclass
class HttpResponse:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> object:
        return json.loads(self.body)


def http_get(url: str, timeout: float = 10.0) -> HttpResponse:
    """GET without raising on 4xx/5xx: tests assert on the status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return HttpResponse(response.status, response.read(), dict(response.headers))
    except urllib.error.HTTPError as error:
        return HttpResponse(error.code, error.read(), dict(error.headers))


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]


def hub_env(**overrides: str) -> dict[str, str]:
    """The environment for a hub process talking to this test run's database and Redis."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=live_database_url(),
        REDIS_URL=settings.REDIS_URL,
        PYTHONUNBUFFERED="1",
        PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
    )
    env.update(overrides)
    return env


def live_database_url() -> str:
    """A URL for the database the tests use (pytest-django's test database once it is set up)."""
    db = settings.DATABASES["default"]
    host = db.get("OPTIONS", {}).get("host") or db.get("HOST") or ""
    port = db.get("PORT") or ""
    if host.startswith("/"):
        return f"postgresql://{db['USER']}@/{db['NAME']}?host={host}"
    return f"postgresql://{db['USER']}@{host}:{port}/{db['NAME']}"


@contextlib.contextmanager
def run_web(env: dict[str, str]) -> Iterator[LiveServer]:
    """Run the ASGI app under daphne on a free loopback port until the block ends."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port), "mcphub.asgi:application"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(url + "/healthz", timeout=5).status, timeout=60, what="daphne to answer")
        yield LiveServer(url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
