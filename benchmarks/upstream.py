"""Warm call through a supervised stdio session vs spawning a process per call.

    .venv/bin/python benchmarks/upstream.py

Same server, same tool, one run; prints both and the ratio (target: >= 200x).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from servers.upstream.config import UpstreamConfig
from servers.upstream.manager import upstream_manager

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "fixture_server.py"
SERVERS = {
    "fixture (SDK server, python)": (sys.executable, (str(FIXTURE),), "echo", {"text": "hi"}),
    "mcp-server-time (PyPI)": (
        str(Path(sys.executable).parent / "mcp-server-time"),
        (),
        "get_current_time",
        {"timezone": "UTC"},
    ),
}
WARM_CALLS = 300
COLD_CALLS = 5


def config(command: str, args: tuple[str, ...], server_id: int) -> UpstreamConfig:
    return UpstreamConfig(id=server_id, slug=f"bench{server_id}", transport="stdio", command=command, args=args)


async def measure(command: str, args: tuple[str, ...], tool: str, arguments: dict) -> tuple[float, float]:
    async with upstream_manager() as manager:
        upstream = manager.pool(config(command, args, 1))
        await upstream.call_tool(tool, arguments)  # connect once; the warm path starts here
        warm: list[float] = []
        for _ in range(WARM_CALLS):
            started = time.perf_counter()
            await upstream.call_tool(tool, arguments)
            warm.append(time.perf_counter() - started)

    cold: list[float] = []
    for i in range(COLD_CALLS):
        # What a hub without supervision does: spawn, handshake, call, stop, for every call.
        started = time.perf_counter()
        async with upstream_manager() as manager:
            await manager.pool(config(command, args, 100 + i)).call_tool(tool, arguments)
        cold.append(time.perf_counter() - started)
    return statistics.median(warm), statistics.median(cold)


async def main() -> None:
    print(f"{'server':32} {'warm p50':>10} {'spawn/call p50':>15} {'ratio':>8}")
    for name, (command, args, tool, arguments) in SERVERS.items():
        warm, cold = await measure(command, args, tool, arguments)
        print(f"{name:32} {warm * 1000:8.2f}ms {cold * 1000:13.1f}ms {cold / warm:7.0f}x")


if __name__ == "__main__":
    anyio.run(main)
