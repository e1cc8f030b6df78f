"""The same tools/call on stdio upstreams: direct (raw JSON-RPC on the pipes) vs through the hub, both eras.

    .venv/bin/python benchmarks/stdio.py

Two stdio servers: the tests' fixture (tests/fixtures/fixture_server.py on the official MCP SDK,
run as a command; tool `echo`) and PyPI's mcp-server-time (tool `get_current_time` in UTC), which is
not in the `make run` environment: the version pinned in requirements-dev.txt is installed into a
virtualenv of its own, var/bench/time-venv, on the first run.

Direct: one server process and a lean client on its pipes (newline-delimited JSON-RPC; handshake
era: initialize + notifications/initialized, 2026-07-28: server/discover then calls carrying the
`_meta` envelope), concurrent callers sharing the process, matched by id; measured in each era the
server answers. Through the hub: the servers registered as stdio servers (max 64 calls at once) in a
scratch database (benchmarks/gateway.py `bench_environment`), one web process per server (the
Procfile's command, call records on), loaded with raw HTTP (benchmarks/harness.py) as 2026-07-28
clients and as handshake-era ones (a session per client). The hub talks to a server in the client's
era when the server speaks both (a handshake-era client is served by a second process of it), so
each hub era is compared with the direct figures of the era the hub speaks upstream.

Prints p50/p95/p99 latency, calls/s and CPU per call at concurrency 1 (400 calls) and 32 (100 calls
each), then per server and hub era: the added p50 at c1, calls/s at c32 against direct, p99/p50 at
c32, and the peak RSS of the web process. CPU per call: direct, of the stdio server process; through
the hub, of the web process and its children (the stdio server processes it runs), so both count
the server's work.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway import LOADS, bench_environment, web
from harness import (
    BASE_DIR,
    HANDSHAKE,
    MODERN,
    Figures,
    PeakRss,
    Target,
    cpu_seconds,
    figures,
    free_port,
    line,
    measure_http,
)

TIME_VENV = BASE_DIR / "var" / "bench" / "time-venv"
ANSWER_TIMEOUT = 30.0
TARGETS = {"added p50 at c1": 0.6, "calls/s at c32 vs direct": 0.8, "p99/p50 at c32": 3.0}


@dataclass
class StdioServer:
    slug: str
    command: list[str]
    tool: str
    arguments: dict[str, Any]
    about: str
    eras: list[str] = field(default_factory=list)  # the eras it answers, found by `probe_eras`


def pinned(package: str) -> str:
    """The version requirements-dev.txt pins for `package`."""
    text = (BASE_DIR / "requirements-dev.txt").read_text()
    found = re.search(rf"^{re.escape(package)}==(\S+)", text, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"{package} is not pinned in requirements-dev.txt")
    return found.group(1)


def time_server() -> Path:
    """mcp-server-time at the pinned version, in a virtualenv of its own (installed once)."""
    version = pinned("mcp-server-time")
    program, stamp = TIME_VENV / "bin" / "mcp-server-time", TIME_VENV / ".pinned"
    if program.exists() and stamp.exists() and stamp.read_text() == version:
        return program
    print(f"installing mcp-server-time=={version} into {TIME_VENV} ...", flush=True)
    TIME_VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(TIME_VENV)], check=True)
    pip = [str(TIME_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, f"mcp-server-time=={version}"], check=True)
    stamp.write_text(version)
    return program


class StdioPeer:
    """One stdio server process and a raw JSON-RPC client on its pipes: callers share it, answers matched by id."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, command: list[str]) -> StdioPeer:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            limit=2**24,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while raw := await self.process.stdout.readline():
            message = json.loads(raw)
            waiter = self._waiting.pop(message.get("id"), None) if "method" not in message else None
            if waiter is not None and not waiter.done():
                waiter.set_result(message)
        for waiter in self._waiting.values():
            waiter.set_exception(RuntimeError("the server closed its stdout"))

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The answer (result or error) to one request."""
        request_id = next(self._ids)
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = waiter
        self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        return await asyncio.wait_for(waiter, ANSWER_TIMEOUT)

    async def call(self, target: Target) -> None:
        """One tools/call, as `target` words it for its era; raises unless it succeeded."""
        body = json.loads(target.call_body(0))
        answer = await self.request("tools/call", body["params"])
        result = answer.get("result")
        if result is None or result.get("isError"):
            raise RuntimeError(f"call failed: {json.dumps(answer)[:300]}")

    async def open(self, era: str) -> None:
        """Start a connection in `era`: the handshake, or server/discover; raises if the server refuses it."""
        if era == MODERN:
            meta = {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {},
            }
            answer = await self.request("server/discover", {"_meta": meta})
            if MODERN not in answer.get("result", {}).get("supportedVersions", []):
                raise RuntimeError(f"server/discover refused: {json.dumps(answer)[:300]}")
            return
        params = {"protocolVersion": era, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}
        answer = await self.request("initialize", params)
        if answer.get("result", {}).get("protocolVersion") != era:
            raise RuntimeError(f"initialize refused: {json.dumps(answer)[:300]}")
        self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()


async def speaks(server: StdioServer, era: str) -> bool:
    peer = await StdioPeer.start(server.command)
    try:
        await peer.open(era)
        await peer.call(Target("", server.tool, era, arguments=server.arguments))
    except (RuntimeError, TimeoutError):
        return False
    finally:
        await peer.close()
    return True


async def direct_load(server: StdioServer, era: str, clients: int, calls_each: int) -> Figures:
    """`clients` concurrent callers on one server process, `calls_each` sequential calls each (after one
    warm-up call each); CPU per call of the server process over the measured calls."""
    target = Target("", server.tool, era, arguments=server.arguments)
    peer = await StdioPeer.start(server.command)
    try:
        await peer.open(era)
        await asyncio.gather(*(peer.call(target) for _ in range(clients)))
        latencies: list[float] = []

        async def one_client() -> None:
            for _ in range(calls_each):
                started = time.perf_counter()
                await peer.call(target)
                latencies.append(time.perf_counter() - started)

        cpu_before = cpu_seconds([peer.process.pid])
        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
        cpu_ms = (cpu_seconds([peer.process.pid]) - cpu_before) * 1000 / len(latencies)
    finally:
        await peer.close()
    return figures(latencies, len(latencies) / elapsed, cpu_ms)


def prepare(env: dict[str, str], servers: list[StdioServer]) -> tuple[str, dict[str, str]]:
    """Migrate, register the servers as stdio servers and discover them, create a token; returns the token
    and the era the hub detected for each server."""
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=BASE_DIR, env=env, check=True)
    registered = [(s.slug, s.command[0], s.command[1:]) for s in servers]
    script = f"""
import django; django.setup()
from django.core.cache import cache
from servers import services
from servers.discovery import discover
from servers.models import McpServer
cache.clear()
for slug, command, args in {registered!r}:
    server = McpServer.objects.create(name=slug, slug=slug, command=command, args=args, max_concurrent_calls=64)
    discover(server)
    server.refresh_from_db()
    print("era", slug, server.protocol_version, "(" + server.era + ")")
print(services.create_token("bench")[1])
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=BASE_DIR, env=env, check=True, capture_output=True, text=True
    )
    output = result.stdout.strip().splitlines()
    detected = {words[1]: " ".join(words[2:]) for words in map(str.split, output) if words[0] == "era"}
    return output[-1], detected


def upstream_era(client_era: str, server: StdioServer) -> str:
    """The era the hub speaks to the server for a client of `client_era`: the same one if the server speaks it."""
    return client_era if client_era in server.eras else server.eras[0]


def verdict(value: float, target: float, at_most: bool) -> str:
    return "ok" if (value <= target if at_most else value >= target) else "MISSED"


def report(server: StdioServer, detected: str, results: dict[str, Figures], rss_mb: float) -> None:
    print(f"\n{server.slug}: {server.about}; speaks {' and '.join(server.eras)} (the hub detected: {detected})")
    for label, figures_of in results.items():
        print(line(label, figures_of))
    for era in (MODERN, HANDSHAKE):
        upstream = upstream_era(era, server)
        direct_c1, direct_c32 = results[f"direct {upstream} c1"], results[f"direct {upstream} c32"]
        c1, c32 = results[f"hub {era} c1"], results[f"hub {era} c32"]
        added, ratio, spread = c1["p50"] - direct_c1["p50"], c32["rate"] / direct_c32["rate"], c32["p99"] / c32["p50"]
        print(
            f"  hub {era} (upstream {upstream}): added p50 at c1 {added:5.2f} ms "
            f"[{verdict(added, TARGETS['added p50 at c1'], True)}]   calls/s at c32 {ratio:4.2f}x direct "
            f"[{verdict(ratio, TARGETS['calls/s at c32 vs direct'], False)}]   p99/p50 at c32 {spread:4.1f} "
            f"[{verdict(spread, TARGETS['p99/p50 at c32'], True)}]   CPU {c32['cpu']:4.2f} vs direct "
            f"{direct_c32['cpu']:4.2f} ms/call"
        )
    print(f"  peak RSS of the web process: {rss_mb:.0f} MB")


def main() -> None:
    import uvloop

    servers = [
        StdioServer(
            "fixture",
            [sys.executable, str(BASE_DIR / "tests" / "fixtures" / "fixture_server.py")],
            "echo",
            {"text": "hello"},
            "tests/fixtures/fixture_server.py (official MCP SDK), echo",
        ),
        StdioServer(
            "time",
            [str(time_server())],
            "get_current_time",
            {"timezone": "UTC"},
            f"PyPI mcp-server-time {pinned('mcp-server-time')}, get_current_time",
        ),
    ]
    results: dict[str, dict[str, Figures]] = {s.slug: {} for s in servers}
    for server in servers:
        server.eras = [era for era in (MODERN, HANDSHAKE) if uvloop.run(speaks(server, era))]
        if not server.eras:
            raise RuntimeError(f"{server.slug} answers in no era")
        for era in server.eras:
            for clients, calls in LOADS:
                figures_of = uvloop.run(direct_load(server, era, clients, calls))
                results[server.slug][f"direct {era} c{clients}"] = figures_of

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcphub.settings")
    env = bench_environment()
    token, detected = prepare(env, servers)
    auth = {"Authorization": f"Bearer {token}"}
    rss: dict[str, float] = {}
    for server in servers:  # one web process per server: its own peak RSS
        port = free_port()
        with web("uvicorn", env, port) as process, PeakRss(process.pid) as peak:
            for era in (MODERN, HANDSHAKE):
                tool = f"{server.slug}__{server.tool}"
                target = Target(f"http://127.0.0.1:{port}/mcp", tool, era, auth, server.arguments)
                measure_http(target, 32, 5, [process.pid])  # warm-up: the server's process (per era) started
                for clients, calls in LOADS:
                    results[server.slug][f"hub {era} c{clients}"] = measure_http(target, clients, calls, [process.pid])
        rss[server.slug] = peak.peak / 2**20

    print("\ntools/call on stdio upstreams: direct (raw JSON-RPC on the pipes) vs through the hub (uvicorn, call")
    print("records on). CPU per call: direct = the stdio server process; hub = the web process and its children")
    print("(the stdio server processes). Targets: added p50 at c1 <= 0.6 ms, calls/s at c32 >= 0.8x direct,")
    print("p99/p50 at c32 <= 3.")
    for server in servers:
        report(server, detected.get(server.slug, "?"), results[server.slug], rss[server.slug])


if __name__ == "__main__":
    main()
