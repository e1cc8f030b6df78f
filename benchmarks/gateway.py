"""The same tools/call on an HTTP upstream: direct vs through the hub, both eras, daphne vs uvicorn.

    .venv/bin/python benchmarks/gateway.py

Uses a scratch database (<name>_bench) on the hub's PostgreSQL and Redis
databases 13-15, registers 20 servers (all pointing at one lean HTTP upstream,
benchmarks/lean_upstream.py, so the upstream is never the bottleneck), runs
the web process under daphne, then uvicorn (the Procfile's command), then
two uvicorn processes on one port (scale-out for stateless-era clients),
with call records on, and prints p50/p95/p99 latency, calls/s and the
serving processes' CPU per call at concurrency 1 and 32, for 2026-07-28
clients and (under uvicorn) handshake-era ones, the ratios, and the peak RSS
of a web process. The load generator is raw HTTP on aiohttp (benchmarks/harness.py).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

from harness import (
    BASE_DIR,
    BIN,
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

sys.path.insert(0, str(BASE_DIR))  # before this folder: benchmarks/logs.py would shadow the logs app
CALLS_AT_1 = 400
CALLS_PER_CLIENT_AT_32 = 100
SERVERS = 20
TWO_PROCESSES = "uvicorn x2"
LOADS = ((1, CALLS_AT_1), (32, CALLS_PER_CLIENT_AT_32))


def bench_environment() -> dict[str, str]:
    """The environment of the hub processes under test: a scratch database and Redis DBs of our own."""
    from scratch import scratch_database

    url, redis_url, _connect = scratch_database("bench")
    return dict(os.environ, DATABASE_URL=url, REDIS_URL=redis_url, PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING")


def prepare(
    env: dict[str, str], upstream_url: str, servers: int = SERVERS, others: dict[str, str] | None = None
) -> str:
    """Migrate, register the servers (bench0, bench1, ...; and `others`, slug -> URL), discover them, create a
    token; returns the token."""
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=BASE_DIR, env=env, check=True)
    script = f"""
import django; django.setup()
from django.core.cache import cache
from servers import services
from servers.discovery import discover
from servers.models import McpServer
cache.clear()
urls = {{f"bench{{i}}": {upstream_url!r} for i in range({servers})}} | {others or {}!r}
for slug, url in urls.items():
    server = McpServer.objects.create(name=slug, slug=slug, transport="streamable_http", url=url,
                                      max_concurrent_calls=64)
    discover(server)
print(services.create_token("bench")[1])
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=BASE_DIR, env=env, check=True, capture_output=True, text=True
    )
    return result.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def web(kind: str, env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    if kind == "daphne":
        command = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "mcphub.asgi:application"]
    elif kind == TWO_PROCESSES:  # scale-out: two web processes on one port, as stateless-era clients allow
        command = web_command(port, "--log-level", "warning", "--workers", "2")
    else:
        command = web_command(port, "--log-level", "warning")
    process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def lean_upstream(*flags: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, str(BASE_DIR / "benchmarks" / "lean_upstream.py"), str(port), *flags]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return process, f"http://127.0.0.1:{port}/mcp"


# The hub's rows: (web server, client era, tool). `bench0` is on the 2026-only upstream, `dual` on one that
# speaks both eras, which the hub serves handshake-era clients through a handshake-era session of its own.
HUB_ROWS = [
    ("daphne", MODERN, "bench0__echo"),
    ("uvicorn", MODERN, "bench0__echo"),
    ("uvicorn", HANDSHAKE, "bench0__echo"),
    ("uvicorn", HANDSHAKE, "dual__echo"),
    (TWO_PROCESSES, MODERN, "bench0__echo"),
]


def label(kind: str, era: str, tool: str) -> str:
    return f"{kind} {era}" + (" dual" if tool.startswith("dual") else "")


def main() -> None:
    modern, modern_url = lean_upstream("--modern-only")
    dual, dual_url = lean_upstream()
    try:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcphub.settings")
        env = bench_environment()
        token = prepare(env, modern_url, others={"dual": dual_url})
        auth = {"Authorization": f"Bearer {token}"}

        results: dict[str, Figures] = {}
        directs = {
            MODERN: (Target(modern_url, "echo"), modern.pid),
            HANDSHAKE: (Target(dual_url, "echo", HANDSHAKE), dual.pid),
        }
        for era, (target, pid) in directs.items():
            for clients, calls in LOADS:
                results[f"direct {era} c{clients}"] = measure_http(target, clients, calls, [pid])
        rss: dict[str, float] = {}
        for kind in ("daphne", "uvicorn", TWO_PROCESSES):
            port = free_port()
            with web(kind, env, port) as process, PeakRss(process.pid) as peak:
                for row_kind, era, tool in HUB_ROWS:
                    if row_kind != kind:
                        continue
                    target = Target(f"http://127.0.0.1:{port}/mcp", tool, era, auth)
                    measure_http(target, 32, 5, [process.pid])  # warm-up: every worker and connection started
                    for clients, calls in LOADS:
                        results[f"{label(kind, era, tool)} c{clients}"] = measure_http(
                            target, clients, calls, [process.pid]
                        )
            rss[kind] = peak.peak / 2**20
    finally:
        for process in (modern, dual):
            process.terminate()
            process.wait(timeout=30)

    print(f"tools/call echo on HTTP upstreams; {SERVERS + 1} servers registered; call records on")
    print("(bench0: a 2026-07-28-only upstream; dual: one that speaks both eras, the direct handshake-era rows)\n")
    for name, figures in results.items():
        print(line(name, figures))
    print()
    for kind, era, tool in HUB_ROWS:
        name = label(kind, era, tool)
        c1, c32 = results[f"{name} c1"], results[f"{name} c32"]
        direct_c1, direct_c32 = results[f"direct {era} c1"], results[f"direct {era} c32"]
        print(
            f"{name:30} added p50 at c1: {c1['p50'] - direct_c1['p50']:5.2f} ms   "
            f"calls/s at c32: {c32['rate']:6.0f} ({c32['rate'] / direct_c32['rate']:.2f}x direct)   "
            f"CPU {c32['cpu']:4.2f} ms/call   p99/p50 at c32: {c32['p99'] / c32['p50']:4.1f}"
        )
    print("\npeak RSS of a web process: " + ", ".join(f"{kind} {mb:.0f} MB" for kind, mb in rss.items()))
    faster = max(("daphne", "uvicorn"), key=lambda k: results[f"{k} {MODERN} c32"]["rate"])
    print(f"faster web server at c32 (2026-07-28): {faster}")


if __name__ == "__main__":
    main()
