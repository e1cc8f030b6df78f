"""Throughput of a CPU-bound stdio tool: one instance vs a pool autoscaled up to 4 replicas.

    .venv/bin/python benchmarks/pools.py [--seconds 10] [--callers 8] [--spin-ms 50]

One run, same load for both: CALLERS concurrent callers calling the fixture
server's `spin` tool (burns SPIN_MS of CPU, blocking its process) through an
`UpstreamPool`. The autoscaled pool first warms up under that load until it has
scaled to its maximum, then is measured. Prints calls/s, p50 and p99 of both and
the ratio (target: >= 1.8x on 2 cores; the ceiling is the core count).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from servers.upstream.config import UpstreamConfig
from servers.upstream.manager import upstream_manager
from servers.upstream.pool import PoolSettings, UpstreamPool

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "fixture_server.py"
MAX_INSTANCES = 4
# Quicker decisions than the production defaults, so the warm-up does not dominate the run.
SETTINGS = PoolSettings(scale_up_inflight=1.5, scale_up_after=1.0, scale_down_after=600, probe_interval=0.2)


def config(server_id: int, max_instances: int) -> UpstreamConfig:
    return UpstreamConfig(
        id=server_id,
        slug=f"spin{server_id}",
        transport="stdio",
        command=sys.executable,
        args=(str(FIXTURE),),
        min_instances=1,
        max_instances=max_instances,
        call_timeout=120,
    )


async def drive(pool: UpstreamPool, callers: int, spin_ms: float, until: anyio.Event) -> list[float]:
    """Closed-loop callers until `until` is set; returns the latencies (seconds) of completed calls."""
    latencies: list[float] = []

    async def caller() -> None:
        while not until.is_set():
            started = time.perf_counter()
            result = await pool.call_tool("spin", {"ms": spin_ms})
            assert not result.is_error, result
            latencies.append(time.perf_counter() - started)

    async with anyio.create_task_group() as group:
        for _ in range(callers):
            group.start_soon(caller)
    return latencies


async def measure(max_instances: int, seconds: float, callers: int, spin_ms: float) -> tuple[float, list[float], int]:
    """(calls/s, latencies, instances) over `seconds` of load, after the pool reached `max_instances`."""
    async with upstream_manager(pool_settings=SETTINGS) as manager:
        pool = manager.pool(config(max_instances, max_instances))
        await pool.call_tool("spin", {"ms": 1})  # the first process is up
        warm_done = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(drive, pool, callers, spin_ms, warm_done)
            with anyio.fail_after(120):
                while pool.size < max_instances or not all(s.healthy for s in pool.instances()):
                    await anyio.sleep(0.1)
            await anyio.sleep(1)  # the last replica's first calls
            warm_done.set()
        done = anyio.Event()
        started = time.perf_counter()
        async with anyio.create_task_group() as group:

            async def stop_later() -> None:
                await anyio.sleep(seconds)
                done.set()

            group.start_soon(stop_later)
            latencies = await drive(pool, callers, spin_ms, done)
        elapsed = time.perf_counter() - started
        return len(latencies) / elapsed, latencies, pool.size


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--spin-ms", type=float, default=50.0)
    args = parser.parse_args()
    load = f"{args.callers} callers, spin {args.spin_ms:g} ms of CPU per call, {args.seconds:g} s"
    print(f"{os.cpu_count()} cores, {load}")
    print(f"{'pool':28} {'instances':>9} {'calls/s':>9} {'p50':>9} {'p99':>9}")
    results = {}
    for label, instances in (("1 instance", 1), (f"autoscaled 1..{MAX_INSTANCES}", MAX_INSTANCES)):
        rate, latencies, size = await measure(instances, args.seconds, args.callers, args.spin_ms)
        results[instances] = rate
        print(
            f"{label:28} {size:9d} {rate:9.1f} {statistics.median(latencies) * 1000:7.0f}ms "
            f"{p99(latencies) * 1000:7.0f}ms"
        )
    print(f"ratio: {results[MAX_INSTANCES] / results[1]:.2f}x (target >= 1.8x)")


if __name__ == "__main__":
    anyio.run(main)
