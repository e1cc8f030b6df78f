"""CPU, memory, restarts and uptime of this web process's stdio upstreams, sampled with psutil.

Each stdio server runs in its own process group (``npx`` → ``node``, ``uvx`` → ``python``), so a
sample covers the child and its descendants. CPU % is measured between two samples (psutil's
``cpu_percent(None)``): the first sample of a new process reads 0.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

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


def sample_gateway() -> list[ProcessSample]:
    """Every stdio instance of this process's MCP gateway (none if the gateway has not started)."""
    from monitoring.instances import gateway_pools

    return sample_sessions(session for pool in gateway_pools() for session in pool.sessions())
