"""What the gateway benchmarks share: processes, a raw JSON-RPC load generator for both eras, figures.

Runs from the environment `make run` builds (aiohttp, uvloop, psutil are runtime dependencies):
nothing here imports the tests.

The load generator is raw HTTP on aiohttp rather than the SDK client: it shares the 2 cores
with what it measures (aiohttp costs ~0.5 ms of CPU per request here, httpx ~1.2 ms). A
handshake-era client opens one session (initialize, notifications/initialized) and makes its
calls in it, as an IDE does; a 2026-07-28 client sends each call as one self-contained POST.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MODERN = "2026-07-28"
HANDSHAKE = "2025-11-25"


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


def web_command(port: int, *extra: str) -> list[str]:
    """The Procfile's web command on a loopback port."""
    line = next(line for line in (BASE_DIR / "Procfile").read_text().splitlines() if line.startswith("web:"))
    program, *arguments = shlex.split(line.removeprefix("web:").replace("$PORT", str(port)))
    return [str(BIN / program), *arguments, *extra]


def process_tree(pid: int) -> list[Any]:
    """The process and its children (uvicorn's workers, a hub's stdio servers)."""
    import psutil

    process = psutil.Process(pid)
    return [process, *process.children(recursive=True)]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes and their children so far."""
    return sum(sum(p.cpu_times()[:2]) for pid in pids for p in process_tree(pid))


class PeakRss:
    """Samples the resident memory of a process (each of its workers, if any) every 50 ms; keeps the largest
    (`peak`, one process) and the largest sum over the process and its children (`total`)."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.peak = 0
        self.total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                sizes = [p.memory_info().rss for p in process_tree(self._pid)]
                self.peak = max(self.peak, *sizes)
                self.total = max(self.total, sum(sizes))
            time.sleep(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Target:
    """An MCP endpoint under load: where, as which era, with which headers, calling which tool."""

    url: str
    tool: str
    era: str = MODERN
    headers: dict[str, str] = field(default_factory=dict)  # e.g. Authorization
    arguments: dict[str, Any] = field(default_factory=lambda: {"text": "hello"})

    def call_body(self, request_id: int) -> bytes:
        params: dict[str, Any] = {"name": self.tool, "arguments": self.arguments}
        if self.era == MODERN:
            params["_meta"] = {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
            }
        return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}).encode()

    def call_headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.era == MODERN:
            headers.update({"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": self.tool})
        return {**headers, **self.headers}


def messages(body: bytes) -> list[dict[str, Any]]:
    """The JSON-RPC messages of an answer, plain JSON or SSE (a priming event carries none)."""
    text = body.decode()
    if text.startswith("{"):
        return [json.loads(text)]
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:") and line[5:].strip()]


def succeeded(body: bytes) -> bool:
    """Whether a tools/call answer is a result without isError."""
    found = [m for m in messages(body) if "result" in m or "error" in m]
    result = found[-1].get("result") if found else None
    return result is not None and not result.get("isError")


async def open_session(http: Any, target: Target) -> dict[str, str]:
    """A handshake-era session (initialize, then initialized): the headers its calls carry."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **target.headers}
    initialize = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": target.era, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
    }
    async with http.post(target.url, data=json.dumps(initialize), headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"initialize failed: {response.status}")
        session = {"MCP-Protocol-Version": target.era}
        if "mcp-session-id" in response.headers:  # a stateless server (ContextForge's default) gives none
            session["Mcp-Session-Id"] = response.headers["mcp-session-id"]
    initialized = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'
    async with http.post(target.url, data=initialized, headers={**headers, **session}) as response:
        await response.read()
    return session


async def run_load(target: Target, clients: int, calls_each: int) -> tuple[list[float], float]:
    """`clients` concurrent callers, each making `calls_each` sequential calls over keep-alive HTTP
    (handshake era: each in a session of its own); the latencies and calls/s."""
    import aiohttp

    latencies: list[float] = []

    async def one_client(http: aiohttp.ClientSession) -> None:
        headers = target.call_headers()
        if target.era != MODERN:
            headers.update(await open_session(http, target))
        for i in range(calls_each + 1):
            started = time.perf_counter()
            async with http.post(target.url, data=target.call_body(i + 1), headers=headers) as response:
                body = await response.read()
            if response.status != 200 or not succeeded(body):
                raise RuntimeError(f"call failed: {response.status} {body[:300]!r}")
            if i:  # the first call of each client warms its connection
                latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
        started = time.perf_counter()
        await asyncio.gather(*(one_client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return latencies, len(latencies) / elapsed


Figures = dict[str, float]


def figures(latencies: list[float], rate: float, cpu_ms: float) -> Figures:
    ordered = sorted(latencies)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"p50": statistics.median(ordered) * 1000, "p95": pick(0.95), "p99": pick(0.99), "rate": rate, "cpu": cpu_ms}


def measure(load: Callable[[], Any], calls: int, pids: list[int]) -> Figures:
    """Run `load` (a coroutine function returning latencies and calls/s) on uvloop; the figures, with the
    CPU the `pids` (and their children) spent per call."""
    import uvloop

    before = cpu_seconds(pids)
    latencies, rate = uvloop.run(load())
    return figures(latencies, rate, (cpu_seconds(pids) - before) * 1000 / calls)


def measure_http(target: Target, clients: int, calls_each: int, pids: list[int]) -> Figures:
    return measure(lambda: run_load(target, clients, calls_each), clients * (calls_each + 1), pids)


def line(label: str, s: Figures) -> str:
    return (
        f"{label:28} p50 {s['p50']:7.2f} ms  p95 {s['p95']:7.2f} ms  p99 {s['p99']:7.2f} ms  {s['rate']:6.0f} calls/s"
        f"  server CPU {s['cpu']:5.2f} ms/call"
    )
