"""Upstream pools against real processes: stdio replicas of the SDK fixture and two HTTP fixture servers.

Timings are generous on purpose (a busy 2-core machine): conditions are waited
for, never assumed after a fixed sleep.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import ExitStack

import anyio
import pytest

from servers.upstream.config import UpstreamConfig
from servers.upstream.errors import UpstreamCrashed, UpstreamError
from servers.upstream.manager import upstream_manager
from servers.upstream.pool import PoolSettings, UpstreamPool
from servers.upstream.session import SessionHooks
from tests.conftest import free_port, http_fixture_server, stdio_config

pytestmark = pytest.mark.anyio

# Autoscaling in test time: decisions after half a second of load, a second of quiet.
FAST = PoolSettings(
    scale_up_inflight=1.5, scale_up_after=0.5, scale_down_inflight=0.5, scale_down_after=1.0, probe_interval=0.2
)


async def wait_until(condition: Callable[[], object], timeout: float = 60.0, what: str = "") -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.05)


def replicas(count: int, policy: str = "least_connections", **overrides: object) -> UpstreamConfig:
    return stdio_config(min_instances=count, max_instances=count, balancing_policy=policy, **overrides)


def http_replicas(url: str, *replica_urls: str, connect_timeout: float) -> UpstreamConfig:
    """One HTTP server behind several URLs, called in turn."""
    return UpstreamConfig(
        id=7, slug="remote", transport="streamable_http", url=url, replica_urls=replica_urls,
        balancing_policy="round_robin", connect_timeout=connect_timeout, call_timeout=30,
    )  # fmt: skip


async def pid_of(pool: UpstreamPool, affinity: str | None = None) -> int:
    return int((await pool.call_tool("pid", {}, affinity=affinity)).content[0].text)


async def load(workers: int, calls: int, call: Callable[[], Awaitable[object]]) -> list[object]:
    """`workers` concurrent callers making `calls` calls each; returns results and exceptions, in order."""
    outcomes: list[object] = []

    async def worker() -> None:
        for _ in range(calls):
            try:
                outcomes.append(await call())
            except UpstreamError as exc:
                outcomes.append(exc)

    async with anyio.create_task_group() as group:
        for _ in range(workers):
            group.start_soon(worker)
    return outcomes


@pytest.mark.parametrize("policy", ["round_robin", "least_connections", "weighted"])
async def test_calls_are_spread_over_stdio_replicas(policy: str) -> None:
    async with upstream_manager() as manager:
        pool = manager.pool(replicas(3, policy))
        await wait_until(lambda: pool.state == "connected" and all(i.state == "connected" for i in pool.instances()))
        pids = await load(6, 30, lambda: pid_of(pool))
        snapshots = pool.instances()

    counts = Counter(pids)
    assert len(counts) == 3, counts
    # An even share is 60 calls each; the weighted policy follows measured latencies, so it is looser.
    tolerance = 0.6 if policy == "weighted" else 0.4
    assert all(60 * (1 - tolerance) <= count <= 60 * (1 + tolerance) for count in counts.values()), counts
    assert sorted(s.label for s in snapshots) == ["#0", "#1", "#2"]
    assert {s.pid for s in snapshots} == set(counts)
    assert sum(s.calls for s in snapshots) == 180
    assert all(s.healthy and s.latency_ms > 0 and s.in_flight == 0 for s in snapshots)


async def test_round_robin_over_two_http_servers() -> None:
    with ExitStack() as stack:
        first = stack.enter_context(http_fixture_server())
        second = stack.enter_context(http_fixture_server())
        config = http_replicas(first, second, connect_timeout=20)
        async with upstream_manager() as manager:
            pool = manager.pool(config)
            pids = await load(4, 20, lambda: pid_of(pool))
            labels = [s.label for s in pool.instances()]

    assert labels == [first, second]
    assert sorted(Counter(pids).values()) == [40, 40]


async def test_unavailable_instance_fails_over_before_sending() -> None:
    dead = f"http://127.0.0.1:{free_port()}/mcp"
    with http_fixture_server() as alive:
        config = http_replicas(dead, alive, connect_timeout=5)
        async with upstream_manager() as manager:
            pool = manager.pool(config)
            results = await load(2, 10, lambda: pool.call_tool("echo", {"text": "x"}))
            snapshots = {s.label: s for s in pool.instances()}

    assert all(not isinstance(result, Exception) for result in results), results
    assert not snapshots[dead].healthy
    assert snapshots[alive].healthy and snapshots[alive].calls == 20


async def test_killed_instance_fails_only_its_calls_in_flight_then_returns() -> None:
    async with upstream_manager(pool_settings=FAST) as manager:
        pool = manager.pool(replicas(3))
        await wait_until(lambda: all(i.state == "connected" for i in pool.instances()))
        killed: dict[str, int] = {}
        outcomes: list[object] = []
        stop = anyio.Event()

        async def caller() -> None:
            while not stop.is_set():
                try:
                    outcomes.append(await pool.call_tool("slow", {"seconds": 0.3}))
                except UpstreamError as exc:
                    outcomes.append(exc)

        async with anyio.create_task_group() as group:
            for _ in range(9):
                group.start_soon(caller)
            await wait_until(lambda: len(outcomes) >= 9)
            # Count and kill with no await in between: nothing can be sent to it meanwhile.
            victim = pool.instances()[1]
            killed = {"pid": victim.pid or 0, "in_flight": victim.in_flight, "before": len(outcomes)}
            os.kill(killed["pid"], signal.SIGKILL)
            await wait_until(lambda: len(outcomes) >= killed["before"] + 30)
            stop.set()

        failures = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
        assert killed["in_flight"] >= 1
        assert 1 <= len(failures) <= killed["in_flight"], failures
        for failure in failures:
            assert isinstance(failure, UpstreamCrashed)
            assert "fixture" in str(failure) and "connection lost" in str(failure)
        assert len(outcomes) - len(failures) >= killed["before"] + 30 - killed["in_flight"]  # the rest went on

        # The instance restarts and a probe puts it back in rotation.
        await wait_until(lambda: all(s.healthy for s in pool.instances()), what="the killed instance back")
        restarted = pool.instances()[1]
        assert restarted.pid != killed["pid"]
        pids = Counter(await load(3, 10, lambda: pid_of(pool)))
        assert restarted.pid in pids


async def test_affinity_keeps_a_caller_on_one_instance() -> None:
    async with upstream_manager() as manager:
        pool = manager.pool(replicas(3, "affinity"))
        seen: dict[str, set[int]] = {}
        for key in (f"session:{n}" for n in range(8)):
            seen[key] = {await pid_of(pool, affinity=key) for _ in range(6)}

    assert all(len(pids) == 1 for pids in seen.values()), seen
    assert len(set().union(*seen.values())) >= 2  # different callers do land on different instances


async def test_per_instance_limit_makes_calls_wait_not_fail() -> None:
    async with upstream_manager() as manager:
        pool = manager.pool(replicas(2, instance_max_concurrent_calls=1))
        busiest = 0

        async def watch() -> None:
            nonlocal busiest
            while True:
                busiest = max([busiest, *(s.in_flight for s in pool.instances())])
                await anyio.sleep(0.01)

        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            results = await load(6, 2, lambda: pool.call_tool("slow", {"seconds": 0.2}))
            group.cancel_scope.cancel()

    assert all(not isinstance(result, Exception) for result in results), results
    assert busiest == 1


async def test_scales_up_under_load_and_down_after_it_stops() -> None:
    events: list[tuple[int, int, str]] = []
    hooks = SessionHooks(on_scale=lambda _id, before, after, reason: events.append((before, after, reason)))
    config = stdio_config(min_instances=1, max_instances=3)
    async with upstream_manager(hooks, FAST) as manager:
        pool = manager.pool(config)
        stop = anyio.Event()
        pids: set[int] = set()
        largest = 0

        async def caller() -> None:
            nonlocal largest
            while not stop.is_set():
                result = await pool.call_tool("spin", {"ms": 30})
                pids.add(result.structured_content["pid"])
                largest = max(largest, pool.size)

        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(caller)
            await wait_until(lambda: pool.size == 3, what="scaled up to the maximum")
            await wait_until(lambda: all(s.healthy for s in pool.instances()), what="the new instances in rotation")
            await anyio.sleep(2)  # still under load: it must stay at the maximum
            largest = max(largest, pool.size)
            stop.set()
        assert len(pids) >= 2  # the new instances took calls

        await wait_until(lambda: pool.size == 1 and len(pool.instances()) == 1, what="scaled back down")
        await anyio.sleep(1.5)  # quiet: never below the minimum
        assert pool.size == 1

    assert largest == 3
    steps = [(before, after) for before, after, _reason in events]
    assert steps == [(1, 2), (2, 3), (3, 2), (2, 1)]
    assert "above 1.5" in events[0][2] and "below 0.5" in events[-1][2]


async def test_minimum_instances_run_and_are_kept_when_idle() -> None:
    events: list[tuple[int, int]] = []
    hooks = SessionHooks(on_scale=lambda _id, before, after, _reason: events.append((before, after)))
    async with upstream_manager(hooks, FAST) as manager:
        pool = manager.pool(stdio_config(min_instances=2, max_instances=4))
        await wait_until(lambda: all(s.state == "connected" for s in pool.instances()))
        await anyio.sleep(2)  # well past the scale-down period
        snapshots = pool.instances()

    assert events == []
    assert len(snapshots) == 2 and len({s.pid for s in snapshots}) == 2


async def test_idle_pool_stops_every_replica() -> None:
    async with upstream_manager() as manager:
        config = replicas(2, idle_timeout=1)
        pool = manager.pool(config)
        await load(2, 2, lambda: pool.call_tool("echo", {"text": "x"}))
        pids = [s.pid for s in pool.instances()]

        await wait_until(lambda: pool.state == "stopped", timeout=30)
        assert all(s.state == "stopped" for s in pool.instances())
        again = manager.pool(config)
        assert again is not pool
        assert (await again.call_tool("echo", {"text": "back"})).content[0].text == "back"
    assert len(set(pids)) == 2
