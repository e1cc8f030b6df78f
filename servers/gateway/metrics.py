"""This process's upstream pools as Prometheus figures: stdio process trees and pool instances.

The gateway publishes its upstreams here while it serves (`serving`); ``/metrics``
(``monitoring.prometheus``) collects them with a `PoolCollector`, restricted to the servers a
token may see. Without a running gateway the families are there, empty.

Each stdio server runs in its own process group (``npx`` → ``node``, ``uvx`` → ``python``), so a
sample covers the child and its descendants, taken with psutil. CPU % is measured between two
samples (psutil's ``cpu_percent(None)``): the first sample of a new process reads 0.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from servers.upstream.manager import UpstreamManager
from servers.upstream.pool import UpstreamPool
from servers.upstream.session import UpstreamSession


@dataclass(frozen=True)
class ProcessSample:
    server_id: int
    slug: str
    pid: int
    cpu_percent: float
    rss_bytes: int
    restarts: int
    uptime_seconds: float


# pid -> psutil.Process, kept between samples: cpu_percent() measures since the previous call on the object.
_processes: dict[int, psutil.Process] = {}

# The running gateway's upstreams (one per process in production; tests may run several).
_serving: list[UpstreamManager] = []


@contextmanager
def serving(upstreams: UpstreamManager) -> Iterator[None]:
    """Publish these upstreams' pools to /metrics for the duration of the block (the gateway's run)."""
    _serving.append(upstreams)
    try:
        yield
    finally:
        _serving.remove(upstreams)


def serving_pools() -> list[UpstreamPool]:
    """The pools of this process's running gateway (none before it started)."""
    return [pool for upstreams in _serving for pool in upstreams.pools()]


def _process(pid: int) -> psutil.Process:
    process = _processes.get(pid)
    if process is None or not process.is_running():  # is_running() also detects a reused pid
        process = _processes[pid] = psutil.Process(pid)
    return process


def sample(session: UpstreamSession) -> ProcessSample | None:
    """One stdio session's process tree, or None (not stdio, not started, or gone)."""
    pid = session.process.pid
    if session.config.transport != "stdio" or pid is None or session.process.returncode is not None:
        return None
    try:
        root = _process(pid)
        tree = [root, *(_process(child.pid) for child in root.children(recursive=True))]
        cpu = rss = 0.0
        for process in tree:
            try:
                cpu += process.cpu_percent(None)
                rss += process.memory_info().rss
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue  # a descendant that just exited
        uptime = max(0.0, time.time() - root.create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        _processes.pop(pid, None)
        return None
    return ProcessSample(
        server_id=session.config.id,
        slug=session.config.slug,
        pid=pid,
        cpu_percent=cpu,
        rss_bytes=int(rss),
        restarts=session.stats.restarts,
        uptime_seconds=uptime,
    )


def sample_sessions(sessions: Iterable[UpstreamSession]) -> list[ProcessSample]:
    samples = [s for session in sessions if (s := sample(session)) is not None]
    live = {p.pid for p in _processes.values() if p.is_running()}
    for pid in set(_processes) - live:
        del _processes[pid]
    return samples


def sample_pools(pools: Iterable[UpstreamPool]) -> list[ProcessSample]:
    """Every stdio instance of these pools."""
    return sample_sessions(session for pool in pools for session in pool.sessions())


class PoolCollector(Collector):
    """The running gateway's pools at scrape time; ``server_ids`` None means every server."""

    def __init__(self, server_ids: frozenset[int] | None = None) -> None:
        self.server_ids = server_ids

    def collect(self) -> Iterator[Metric]:
        pools = [pool for pool in serving_pools() if self.server_ids is None or pool.config.id in self.server_ids]
        yield from _process_metrics(sample_pools(pools))
        yield from _instance_metrics(pools)


def _process_metrics(samples: Iterable[ProcessSample]) -> Iterable[Metric]:
    labels = ["server", "pid"]
    cpu = GaugeMetricFamily(
        "mcphub_stdio_process_cpu_percent", "CPU % of a stdio upstream's process tree.", labels=labels
    )
    rss = GaugeMetricFamily("mcphub_stdio_process_rss_bytes", "Resident memory of the process tree.", labels=labels)
    restarts = CounterMetricFamily("mcphub_stdio_process_restarts", "Restarts of the upstream session.", labels=labels)
    uptime = GaugeMetricFamily(
        "mcphub_stdio_process_uptime_seconds", "Seconds since the process started.", labels=labels
    )
    for sample in samples:
        values = [sample.slug, str(sample.pid)]
        cpu.add_metric(values, sample.cpu_percent)
        rss.add_metric(values, sample.rss_bytes)
        restarts.add_metric(values, sample.restarts)
        uptime.add_metric(values, sample.uptime_seconds)
    return [cpu, rss, restarts, uptime]


def _instance_metrics(pools: Iterable[UpstreamPool]) -> Iterable[Metric]:
    labels = ["server", "instance"]
    count = GaugeMetricFamily("mcphub_upstream_instances", "Running instances of a server.", labels=["server"])
    healthy = GaugeMetricFamily("mcphub_upstream_instance_healthy", "1: in rotation.", labels=labels)
    in_flight = GaugeMetricFamily("mcphub_upstream_instance_in_flight", "Calls in flight.", labels=labels)
    latency = GaugeMetricFamily(
        "mcphub_upstream_instance_latency_seconds", "Moving average of the instance's call latency.", labels=labels
    )
    calls = CounterMetricFamily("mcphub_upstream_instance_calls", "Calls answered by the instance.", labels=labels)
    errors = CounterMetricFamily("mcphub_upstream_instance_errors", "Calls failed on the instance.", labels=labels)
    counts: dict[str, int] = defaultdict(int)  # a server's handshake variant is a pool of its own: one figure
    for pool in pools:
        members = pool.instances()
        counts[pool.config.slug] += len(members)
        for member in members:
            values = [pool.config.slug, member.label]
            healthy.add_metric(values, 1.0 if member.healthy else 0.0)
            in_flight.add_metric(values, member.in_flight)
            latency.add_metric(values, member.latency_ms / 1000)
            calls.add_metric(values, member.calls)
            errors.add_metric(values, member.errors)
    for slug, number in counts.items():
        count.add_metric([slug], number)
    return [count, healthy, in_flight, latency, calls, errors]
