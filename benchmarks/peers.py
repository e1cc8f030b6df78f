"""The hub side by side with the strongest peer gateway, IBM ContextForge, in one run.

    .venv/bin/python benchmarks/peers.py

Installs ContextForge (mcp-contextforge-gateway, pinned below, from PyPI) once into its own
virtualenv, var/peers/contextforge-venv, and starts one lean HTTP upstream
(benchmarks/lean_upstream.py, which speaks the handshake era too). The same upstream is
registered in ContextForge (a gateway and a virtual server through its REST API, a JWT from its
mcpgateway.utils.create_jwt_token, a fresh SQLite database under var/peers/contextforge) and in
the hub (a scratch database, as benchmarks/gateway.py does). ContextForge runs under its
recommended production server, gunicorn with uvicorn workers (its run-gunicorn.sh options), with
one worker; the hub runs the Procfile's web command (one uvicorn process). ContextForge keeps its
defaults except for what a load test on loopback needs (printed at the end): its rate limiter is
off and loopback upstreams are allowed.

Handshake-era clients (2025-11-25, the version ContextForge's endpoint announces) call
tools/call echo direct to the upstream, through the hub and through ContextForge, in interleaved
rounds: p50/p95/p99 at concurrency 1 (400 calls) and 32 (100 calls per client), calls/s, the
gateway's CPU per call (its process and children), and its peak RSS; the hub with 2026-07-28
clients too, for reference (ContextForge 1.0.7 does not speak that era). Prints one table and the
ratios against the targets of issue #16: hub calls/s at c32 >= 30x ContextForge's, ContextForge's
p50 at c1 >= 20x the hub's, hub RSS <= 0.5x ContextForge's. The load generator is raw HTTP on
aiohttp (benchmarks/harness.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from gateway import bench_environment, prepare  # puts the repo before this folder on sys.path
from harness import (
    BASE_DIR,
    HANDSHAKE,
    MODERN,
    Figures,
    PeakRss,
    Target,
    free_port,
    line,
    measure_http,
    wait_port,
    web_command,
)

CONTEXTFORGE = "mcp-contextforge-gateway"
CONTEXTFORGE_VERSION = "1.0.7.post20260921"
PEERS_DIR = BASE_DIR / "var" / "peers"
VENV = PEERS_DIR / "contextforge-venv"
DATA = PEERS_DIR / "contextforge"  # its working folder: SQLite database, gunicorn hooks, log; no .env
ADMIN = "admin@example.com"  # ContextForge's default PLATFORM_ADMIN_EMAIL
JWT_ARGS = ("--exp", "10080", "--secret")  # a week, as its README shows
ROUNDS = 2
LOADS = ((1, 400), (32, 100))
DIRECT, HUB, PEER = "direct", "hub", "ContextForge"
HUB_MODERN = f"hub, {MODERN} clients"

# Our own gunicorn hook, what ContextForge's gunicorn config does after --preload forks a worker:
# the worker must not share the master's SQLAlchemy connection pool.
GUNICORN_HOOKS = """
def post_fork(server, worker):
    from mcpgateway.db import engine

    engine.dispose(close=False)
"""


def install_contextforge() -> None:
    """Create the virtualenv and install the pinned release, unless that release is already there."""
    python = VENV / "bin" / "python"
    probe = f"import importlib.metadata as m; print(m.version({CONTEXTFORGE!r}))"
    if python.exists():
        found = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip() == CONTEXTFORGE_VERSION:
            return
    print(f"installing {CONTEXTFORGE}=={CONTEXTFORGE_VERSION} into {VENV.relative_to(BASE_DIR)} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"{CONTEXTFORGE}=={CONTEXTFORGE_VERSION}"], check=True
    )


def contextforge_settings(port: int) -> dict[str, str]:
    """ContextForge's environment: what differs from its defaults (secrets it has no default for)."""
    return {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATABASE_URL": f"sqlite:///{DATA / 'mcp.db'}",  # SQLite, as its default (sqlite:///./mcp.db)
        "JWT_SECRET_KEY": secrets.token_urlsafe(32),
        "AUTH_ENCRYPTION_SECRET": secrets.token_urlsafe(32),
        "PLATFORM_ADMIN_PASSWORD": f"Bench-{secrets.token_urlsafe(12)}!",
        "BASIC_AUTH_PASSWORD": f"Bench-{secrets.token_urlsafe(12)}!",
        "SSRF_ALLOW_LOCALHOST": "true",  # the upstream is on loopback; refused by default
        "RATE_LIMITING_ENABLED": "false",  # by default MCP calls are limited to 100 a minute per user
    }


def gunicorn_command(port: int) -> list[str]:
    """ContextForge's production command (run-gunicorn.sh, `make serve`) with one worker."""
    return [
        str(VENV / "bin" / "gunicorn"),
        "-c",
        str(DATA / "gunicorn_hooks.py"),
        "--worker-class",
        "uvicorn.workers.UvicornWorker",
        "--workers",
        "1",
        "--timeout",
        "600",
        "--max-requests",
        "100000",
        "--max-requests-jitter",
        "100",
        "--access-logfile",
        "/dev/null",
        "--error-logfile",
        str(DATA / "gunicorn.log"),
        "--forwarded-allow-ips",
        "*",
        "--no-control-socket",
        "--preload",
        "--bind",
        f"127.0.0.1:{port}",
        "mcpgateway.main:app",
    ]


def rest(url: str, token: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def contextforge(upstream_url: str) -> Iterator[tuple[subprocess.Popen[bytes], Target, dict[str, str]]]:
    """ContextForge on a fresh database with the upstream registered; its process, MCP target and settings."""
    if DATA.exists():
        shutil.rmtree(DATA)
    DATA.mkdir(parents=True)
    (DATA / "gunicorn_hooks.py").write_text(GUNICORN_HOOKS)
    port = free_port()
    settings = contextforge_settings(port)
    env = {
        "PATH": f"{VENV / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", str(DATA)),
        "LANG": "C.UTF-8",
        "VIRTUAL_ENV": str(VENV),
        **settings,
    }
    process = subprocess.Popen(
        gunicorn_command(port), cwd=DATA, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_port(port, timeout=300)  # the master migrates the database before it binds
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{base}/health", timeout=10) as response:
                if response.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"ContextForge is not healthy; see {DATA / 'gunicorn.log'}")
            time.sleep(0.5)
        token = subprocess.run(
            [
                str(VENV / "bin" / "python"),
                "-m",
                "mcpgateway.utils.create_jwt_token",
                "--username",
                ADMIN,
                *JWT_ARGS,
                settings["JWT_SECRET_KEY"],
            ],
            cwd=DATA,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[-1]
        gateway = rest(f"{base}/gateways", token, {"name": "lean", "url": upstream_url, "transport": "STREAMABLEHTTP"})
        tools = [tool for tool in rest(f"{base}/tools", token) if tool["gatewayId"] == gateway["id"]]
        server = rest(
            f"{base}/servers",
            token,
            {"server": {"name": "bench", "associated_tools": [tool["id"] for tool in tools]}, "visibility": "public"},
        )
        echo = next(tool["name"] for tool in tools if tool["originalName"] == "echo")
        target = Target(f"{base}/servers/{server['id']}/mcp", echo, HANDSHAKE, {"Authorization": f"Bearer {token}"})
        yield process, target, settings
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def hub(upstream_url: str) -> Iterator[tuple[subprocess.Popen[bytes], Target]]:
    """The hub's web process (the Procfile's command) on a scratch database with the upstream registered."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcphub.settings")
    env = bench_environment()
    token = prepare(env, upstream_url, servers=1)
    port = free_port()
    command = web_command(port, "--log-level", "warning")
    process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield (
            process,
            Target(f"http://127.0.0.1:{port}/mcp", "bench0__echo", HANDSHAKE, {"Authorization": f"Bearer {token}"}),
        )
    finally:
        process.terminate()
        process.wait(timeout=30)


def mean(rounds: list[Figures]) -> Figures:
    return {key: statistics.fmean(r[key] for r in rounds) for key in rounds[0]}


def table(results: dict[str, dict[int, Figures]], rss: dict[str, tuple[float, float]]) -> str:
    head = (
        "| target | c1 p50 | c1 p95 | c1 p99 | c32 p50 | c32 p95 | c32 p99 | c32 calls/s | CPU per call at c32"
        " | peak RSS (largest process / with children) |"
    )
    rows = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for name, by_load in results.items():
        c1, c32 = by_load[1], by_load[32]
        memory = f"{rss[name][0]:.0f} MB / {rss[name][1]:.0f} MB" if name in rss else "-"
        rows.append(
            f"| {name} | {c1['p50']:.2f} ms | {c1['p95']:.2f} ms | {c1['p99']:.2f} ms | {c32['p50']:.1f} ms"
            f" | {c32['p95']:.1f} ms | {c32['p99']:.1f} ms | {c32['rate']:.0f} | {c32['cpu']:.2f} ms | {memory} |"
        )
    return "\n".join(rows)


def main() -> None:
    install_contextforge()
    upstream_port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(BASE_DIR / "benchmarks" / "lean_upstream.py"), str(upstream_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rounds: dict[str, dict[int, list[Figures]]] = {name: {1: [], 32: []} for name in (DIRECT, HUB, PEER, HUB_MODERN)}
    rss: dict[str, tuple[float, float]] = {}
    try:
        wait_port(upstream_port)
        upstream_url = f"http://127.0.0.1:{upstream_port}/mcp"
        with (
            hub(upstream_url) as (hub_process, hub_target),
            contextforge(upstream_url) as (peer_process, peer_target, settings),
            PeakRss(hub_process.pid) as hub_rss,
            PeakRss(peer_process.pid) as peer_rss,
        ):
            targets = {
                DIRECT: (Target(upstream_url, "echo", HANDSHAKE), [upstream.pid]),
                HUB: (hub_target, [hub_process.pid]),
                HUB_MODERN: (dataclasses.replace(hub_target, era=MODERN), [hub_process.pid]),
                PEER: (peer_target, [peer_process.pid]),
            }
            for target, pids in targets.values():
                measure_http(target, 32, 5, pids)  # warm-up: connections, caches, upstream sessions
            for number in range(1, ROUNDS + 1):
                for name, (target, pids) in targets.items():
                    for clients, calls in LOADS:
                        figures = measure_http(target, clients, calls, pids)
                        rounds[name][clients].append(figures)
                        print(line(f"round {number} {name} c{clients}", figures), flush=True)
        rss = {
            HUB: (hub_rss.peak / 2**20, hub_rss.total / 2**20),
            PEER: (peer_rss.peak / 2**20, peer_rss.total / 2**20),
        }
    finally:
        upstream.terminate()
        upstream.wait(timeout=30)

    results = {
        name: {clients: mean(figures) for clients, figures in by_load.items()} for name, by_load in rounds.items()
    }
    print(
        f"\ntools/call echo on one lean HTTP upstream, handshake-era clients ({HANDSHAKE}: initialize,"
        f" notifications/initialized, then the calls), mean of {ROUNDS} interleaved rounds;"
        f" ContextForge {CONTEXTFORGE_VERSION}, gunicorn + 1 uvicorn worker, vs the hub's web process"
        " (uvicorn, call records on)\n"
    )
    print(table(results, rss))
    print(
        f"(the {HUB_MODERN} row, for reference: the same web process with stateless clients, one POST a call;"
        " ContextForge 1.0.7 does not speak that era; its ratios below are not counted)"
    )
    ratios = (
        ("hub calls/s at c32 / ContextForge's", results[HUB][32]["rate"] / results[PEER][32]["rate"], 30),
        ("ContextForge p50 at c1 / hub's", results[PEER][1]["p50"] / results[HUB][1]["p50"], 20),
        ("hub RSS / ContextForge RSS (largest process)", rss[HUB][0] / rss[PEER][0], -0.5),
        ("hub RSS / ContextForge RSS (with children)", rss[HUB][1] / rss[PEER][1], -0.5),
    )
    print()
    for label, value, bound in ratios:  # a negative bound is an upper bound
        met = value >= bound if bound > 0 else value <= -bound
        goal = f"{'>=' if bound > 0 else '<='} {abs(bound)}x"
        print(f"{label:46} {value:6.2f}x  (target {goal}: {'met' if met else 'NOT met'})")
    print("\nContextForge settings that differ from its defaults (secrets generated per run):")
    for key, value in settings.items():
        shown = "<generated>" if "SECRET" in key or "PASSWORD" in key else value
        print(f"  {key}={shown}")
    print(
        "  (everything else default: stateless streamable HTTP with JSON answers (USE_STATEFUL_SESSIONS=false),"
        " CACHE_TYPE=database, LOG_LEVEL=ERROR, auth required)"
    )
    print(f"ContextForge command: {' '.join(gunicorn_command(0)).replace('127.0.0.1:0', '127.0.0.1:PORT')}")


if __name__ == "__main__":
    main()
