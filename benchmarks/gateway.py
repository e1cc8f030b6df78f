"""The same tools/call on an HTTP upstream: direct vs through the hub, daphne vs uvicorn.

    .venv/bin/python benchmarks/gateway.py

Uses a scratch database (<name>_bench) on the hub's PostgreSQL and Redis
databases 13-15, registers 20 servers (all pointing at one lean HTTP upstream,
benchmarks/lean_upstream.py, so the upstream is never the bottleneck), runs
the web process under daphne, then uvicorn (the Procfile's command), then
two uvicorn processes on one port (scale-out for stateless-era clients),
with call records on, and prints p50/p95/p99 latency, calls/s and the
serving processes' CPU per call at concurrency 1 and 32, the ratios, and the
peak RSS of a web process. The load generator is raw HTTP on aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
BIN = Path(sys.executable).parent
CALLS_AT_1 = 400
CALLS_PER_CLIENT_AT_32 = 100
SERVERS = 20
TWO_PROCESSES = "uvicorn x2"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def bench_environment() -> dict[str, str]:
    """The environment of the hub processes under test: a scratch database and Redis DBs of our own."""
    from scratch import scratch_database

    url, redis_url, _connect = scratch_database("bench")
    return dict(os.environ, DATABASE_URL=url, REDIS_URL=redis_url, PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING")


def prepare(env: dict[str, str], upstream_url: str) -> str:
    """Migrate, register the servers, discover them, create a token; returns the token."""
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=BASE_DIR, env=env, check=True)
    script = f"""
import django; django.setup()
from django.core.cache import cache
from servers import services
from servers.discovery import discover
from servers.models import McpServer
cache.clear()
for i in range({SERVERS}):
    server = McpServer.objects.create(name=f"bench{{i}}", slug=f"bench{{i}}", transport="streamable_http",
                                      url={upstream_url!r}, max_concurrent_calls=64)
    discover(server)
print(services.create_token("bench")[1])
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=BASE_DIR, env=env, check=True, capture_output=True, text=True
    )
    return result.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def web(kind: str, env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    from tests.conftest import uvicorn_command

    if kind == "daphne":
        command = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "mcphub.asgi:application"]
    elif kind == TWO_PROCESSES:  # scale-out: two web processes on one port, as stateless-era clients allow
        command = uvicorn_command(port, "--log-level", "warning", "--workers", "2")
    else:
        command = uvicorn_command(port, "--log-level", "warning")
    process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def process_tree(pid: int) -> list[Any]:
    """The process and its children (uvicorn's workers)."""
    import psutil

    process = psutil.Process(pid)
    return [process, *process.children(recursive=True)]


class PeakRss:
    """Samples the resident memory of a process (each of its workers, if any) every 50 ms; keeps the largest."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.peak = max(self.peak, *(p.memory_info().rss for p in process_tree(self._process.pid)))
            time.sleep(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def call_body(tool: str, request_id: int) -> bytes:
    """A 2026-07-28 tools/call as a lean client sends it: one stateless POST per call."""
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    params = {"name": tool, "arguments": {"text": "hello"}, "_meta": meta}
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}).encode()


def succeeded(body: bytes) -> bool:
    """Whether a tools/call answer (plain JSON or one SSE event) is a result without isError."""
    text = body.decode()
    if not text.startswith("{"):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
    result = json.loads(text).get("result")
    return result is not None and not result.get("isError")


async def run_load(url: str, token: str | None, tool: str, clients: int, calls_each: int) -> tuple[list[float], float]:
    """`clients` concurrent callers, each making `calls_each` sequential calls over keep-alive HTTP.

    Raw HTTP on aiohttp rather than the SDK client: the load generator shares the 2 cores
    with what it measures (aiohttp costs ~0.5 ms of CPU per request here, httpx ~1.2 ms).
    """
    import aiohttp

    latencies: list[float] = []
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": tool,
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"

    async def one_client(http: aiohttp.ClientSession) -> None:
        for i in range(calls_each + 1):
            started = time.perf_counter()
            async with http.post(url, data=call_body(tool, i), headers=headers) as response:
                body = await response.read()
            if response.status != 200 or not succeeded(body):
                raise RuntimeError(f"call failed: {response.status} {body[:200]!r}")
            if i:  # the first call of each client warms its connection
                latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
        started = time.perf_counter()
        await asyncio.gather(*(one_client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return latencies, len(latencies) / elapsed


def measure(url: str, token: str | None, tool: str, clients: int, calls_each: int, server_pid: int) -> dict[str, float]:
    """Latency percentiles, calls/s, and the CPU the serving process spent per call."""
    import uvloop

    def cpu() -> float:
        return sum(sum(process.cpu_times()[:2]) for process in process_tree(server_pid))

    cpu_before = cpu()
    latencies, rate = uvloop.run(run_load(url, token, tool, clients, calls_each))
    cpu_ms = (cpu() - cpu_before) * 1000 / (clients * (calls_each + 1))
    ordered = sorted(latencies)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"p50": statistics.median(ordered) * 1000, "p95": pick(0.95), "p99": pick(0.99), "rate": rate, "cpu": cpu_ms}


def line(label: str, s: dict[str, float]) -> str:
    return (
        f"{label:16} p50 {s['p50']:7.2f} ms  p95 {s['p95']:7.2f} ms  p99 {s['p99']:7.2f} ms  {s['rate']:6.0f} calls/s"
        f"  server CPU {s['cpu']:5.2f} ms/call"
    )


def main() -> None:
    upstream_port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(BASE_DIR / "benchmarks" / "lean_upstream.py"), str(upstream_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(upstream_port)
        upstream_url = f"http://127.0.0.1:{upstream_port}/mcp"
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcphub.settings")
        env = bench_environment()
        token = prepare(env, upstream_url)

        results: dict[str, dict[str, float]] = {}
        for concurrency, calls in ((1, CALLS_AT_1), (32, CALLS_PER_CLIENT_AT_32)):
            results[f"direct c{concurrency}"] = measure(upstream_url, None, "echo", concurrency, calls, upstream.pid)
        rss: dict[str, float] = {}
        for kind in ("daphne", "uvicorn", TWO_PROCESSES):
            port = free_port()
            with web(kind, env, port) as process, PeakRss(process.pid) as peak:
                hub_url = f"http://127.0.0.1:{port}/mcp"
                measure(hub_url, token, "bench0__echo", 32, 5, process.pid)  # warm-up: every worker started
                for concurrency, calls in ((1, CALLS_AT_1), (32, CALLS_PER_CLIENT_AT_32)):
                    results[f"{kind} c{concurrency}"] = measure(
                        hub_url, token, "bench0__echo", concurrency, calls, process.pid
                    )
            rss[kind] = peak.peak / 2**20
    finally:
        upstream.terminate()
        upstream.wait(timeout=30)

    print(f"tools/call echo on an HTTP upstream; {SERVERS} servers registered; call records on\n")
    for label, figures in results.items():
        print(line(label, figures))
    print()
    for kind in ("daphne", "uvicorn", TWO_PROCESSES):
        added = results[f"{kind} c1"]["p50"] - results["direct c1"]["p50"]
        print(
            f"{kind:8} added p50 at c1: {added:5.2f} ms   calls/s at c32: {results[f'{kind} c32']['rate']:6.0f} "
            f"({results[f'{kind} c32']['rate'] / results['direct c32']['rate']:.2f}x direct)   "
            f"peak RSS {rss[kind]:5.0f} MB"
        )
    faster = max(("daphne", "uvicorn"), key=lambda k: results[f"{k} c32"]["rate"])
    print(f"\nfaster web server at c32: {faster}")


if __name__ == "__main__":
    main()
