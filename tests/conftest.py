"""Shared fixtures: real PostgreSQL and Redis (from the environment or embedded), live hub processes."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.conf import settings

from mcphub import embedded

if TYPE_CHECKING:
    from servers.upstream.config import UpstreamConfig

BASE_DIR = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Without DATABASE_URL / REDIS_URL the run uses the embedded servers: start them (settings, already
    loaded by pytest-django, computed their addresses without starting anything)."""
    computed = {"DATABASE_URL": settings.DATABASE_URL, "REDIS_URL": settings.REDIS_URL}
    embedded.start_unconfigured()
    moved = [name for name, url in computed.items() if os.environ[name] != url]
    if moved:
        pytest.exit(f"embedded {' and '.join(moved)} moved from what settings computed (a port taken?); run again")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Stop the embedded servers this run started (none when DATABASE_URL / REDIS_URL were given).
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


def http_get(url: str, timeout: float = 10.0, headers: dict[str, str] | None = None) -> HttpResponse:
    """GET without raising on 4xx/5xx: tests assert on the status."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as response:
            return HttpResponse(response.status, response.read(), dict(response.headers))
    except urllib.error.HTTPError as error:
        return HttpResponse(error.code, error.read(), dict(error.headers))


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def sse_messages(text: str) -> list[Any]:
    """The JSON-RPC messages of an SSE body; a priming event (an id, empty data: SEP-1699) carries none."""
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:") and line[5:].strip()]


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


def uvicorn_command(port: int, *extra: str) -> list[str]:
    """The Procfile's web command on a loopback port (tests and benchmarks start the web server this way)."""
    line = next(line for line in (BASE_DIR / "Procfile").read_text().splitlines() if line.startswith("web:"))
    program, *arguments = shlex.split(line.removeprefix("web:").replace("$PORT", str(port)))
    return [str(Path(sys.executable).parent / program), *arguments, *extra]


@contextlib.contextmanager
def run_web(env: dict[str, str], port: int | None = None, daphne: bool = False) -> Iterator[LiveServer]:
    """Run the ASGI app with the Procfile's web command (uvicorn, lifespan on) on a loopback port until the
    block ends; `daphne`: under daphne instead, a server without lifespan (the gateway starts lazily).

    The test may stop the process first. Its output goes to a file (a pipe nobody reads
    would fill up and stall it); the file's tail is printed when the block fails.
    """
    port = port or free_port()
    log = tempfile.NamedTemporaryFile(prefix="web-", suffix=".log", delete=False)  # noqa: SIM115
    daphne_command = [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port)]
    command = [*daphne_command, "mcphub.asgi:application"] if daphne else uvicorn_command(port)
    process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(url + "/healthz", timeout=5).status, timeout=90, what="the web server to answer")
        yield LiveServer(url, process, Path(log.name))
    except BaseException:
        print(f"--- web server output ({log.name}), last lines ---")
        print("\n".join(Path(log.name).read_text(errors="replace").splitlines()[-60:]))
        raise
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


@pytest.fixture
def embedded_var_dir() -> Iterator[Path]:
    """A var folder for embedded servers of a test's own, outside pytest's tmp_path: other pytest runs on
    the machine reset /tmp/pytest-of-<user> to 0700, which locks out the `pgserver` user PostgreSQL runs
    as (when tests run as root) and makes `pg_ctl stop` fail."""
    path = Path(tempfile.mkdtemp(prefix="mcphub-var-"))
    yield path / "var"
    shutil.rmtree(path, ignore_errors=True)


def embedded_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a hub on embedded servers of its own under `var_dir` (no DATABASE_URL/REDIS_URL)."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "MCPHUB_ADMIN_PASSWORD"}}
    env.update(
        MCPHUB_VAR_DIR=str(var_dir),
        PYTHONUNBUFFERED="1",
        PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
        **extra,
    )
    return env


# --- MCP servers to test against ----------------------------------------------------------

FIXTURE_SERVER = BASE_DIR / "tests" / "fixtures" / "fixture_server.py"
EVERYTHING = BASE_DIR / "tests" / "fixtures" / "node" / "node_modules" / ".bin" / "mcp-server-everything"
MCP_SERVER_TIME = Path(sys.executable).parent / "mcp-server-time"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def stdio_config(*flags: str, id: int = 1, slug: str = "fixture", **overrides: object) -> UpstreamConfig:
    """An upstream config running our SDK fixture server over stdio."""
    from servers.upstream.config import UpstreamConfig

    values: dict[str, object] = {
        "id": id,
        "slug": slug,
        "transport": "stdio",
        "command": sys.executable,
        "args": (str(FIXTURE_SERVER), *flags),
        "connect_timeout": 20.0,
        "call_timeout": 30.0,
    }
    values.update(overrides)
    return UpstreamConfig(**values)  # type: ignore[arg-type]


@contextlib.contextmanager
def http_fixture_server(*flags: str, port: int | None = None) -> Iterator[str]:
    """Our fixture server over HTTP (`--http`, or `--sse` when flagged); yields its endpoint URL."""
    port = port or free_port()
    sse = "--sse" in flags
    args = [a for a in flags if a != "--sse"]
    mode = ["--sse", str(port)] if sse else ["--http", str(port)]
    process = subprocess.Popen([sys.executable, str(FIXTURE_SERVER), *mode, *args], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/sse" if sse else f"http://127.0.0.1:{port}/mcp"
    try:
        wait_for(lambda: _port_open(port), timeout=30, what=f"fixture server on {port}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


@contextlib.contextmanager
def everything_http_server(mode: str = "streamableHttp") -> Iterator[str]:
    """server-everything from npm over HTTP; yields its endpoint URL."""
    port = free_port()
    process = subprocess.Popen(
        [str(EVERYTHING), mode],
        env=dict(os.environ, PORT=str(port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: _port_open(port), timeout=60, what=f"server-everything on {port}")
        yield f"http://127.0.0.1:{port}/" + ("mcp" if mode == "streamableHttp" else "sse")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        process.wait(timeout=15)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _celery(*arguments: str, log: Path | None = None, **env: str) -> subprocess.Popen[bytes]:
    """`celery -A mcphub ...` on this run's broker and test database; its output to `log` if given."""
    output = log.open("ab") if log is not None else None
    try:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "celery"), "-A", "mcphub", *arguments],
            cwd=BASE_DIR,
            env=hub_env(**env),
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    finally:
        if output is not None:
            output.close()  # the child has its own copy


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def run_celery_worker(
    log: Path | None = None, loglevel: str = "WARNING", **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker process until the block ends (the test needs a transactional database)."""
    from mcphub.celery import app

    arguments = ("worker", "--pool", "solo", "--without-gossip", "--without-mingle", "--loglevel", loglevel)
    process = _celery(*arguments, log=log, **env)
    try:
        wait_for(lambda: app.control.ping(timeout=1), timeout=60, what="the Celery worker")
        yield process
    finally:
        _stop(process)


@contextlib.contextmanager
def run_celery_beat(**env: str) -> Iterator[subprocess.Popen[bytes]]:
    """Real Celery beat (the schedule in settings) until the block ends; its schedule file is a temporary one."""
    schedule = Path(tempfile.mkdtemp()) / "beat-schedule"
    process = _celery("beat", "-s", str(schedule), "-l", "WARNING", **env)
    try:
        yield process
    finally:
        _stop(process)


@pytest.fixture
def celery_worker(transactional_db: None) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker process on this run's broker and test database."""
    with run_celery_worker() as process:
        yield process
