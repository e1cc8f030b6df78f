"""The upstream pools of one process, keyed by server id, run in one task group.

Owned by a long-lived task: the gateway's runner in a web process, an
`upstream_manager()` block in a Celery task (discovery, probes), a test. Each
server is served by an `UpstreamPool` (one instance unless configured otherwise);
pools start lazily on first use and are replaced when the server's
`config_version` moves on. A dual-era server may also have a handshake variant
for its handshake-era clients (`pool_for`, `servers.upstream.eras`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVarTuple

import anyio
from anyio.abc import TaskGroup

from servers.upstream.config import UpstreamConfig
from servers.upstream.eras import HANDSHAKE, EraVariants
from servers.upstream.pool import PoolSettings, UpstreamPool
from servers.upstream.session import SessionHooks
from servers.upstream.watch import ResourceWatch

Args = TypeVarTuple("Args")


class UpstreamManager:
    def __init__(
        self, task_group: TaskGroup, hooks: SessionHooks | None = None, pool_settings: PoolSettings | None = None
    ) -> None:
        self._task_group = task_group
        self._hooks = hooks or SessionHooks()
        self._pool_settings = pool_settings or PoolSettings()
        self._pools: dict[int, UpstreamPool] = {}
        self._variants = EraVariants()
        self._watches: dict[tuple[int, str], ResourceWatch] = {}

    def pool(self, config: UpstreamConfig) -> UpstreamPool:
        """The live pool for this server, started or replaced as needed."""
        current = self._pools.get(config.id)
        if current is not None and current.usable and current.config.config_version >= config.config_version:
            return current
        if current is not None:
            current.retire()  # finishes its in-flight calls, then stops its process
        pool = self._pools[config.id] = self._start(config)
        return pool

    async def pool_for(self, config: UpstreamConfig, era: str) -> UpstreamPool:
        """The pool for a downstream client of `era`: the main one, or the handshake variant of a dual-era server."""
        primary = self.pool(config)
        if era != HANDSHAKE or not self._variants.wanted(config, primary):
            return primary
        variant = self._variants.current(config)
        if variant is None:
            variant = self._variants.pools[config.id] = self._start(config.in_era(HANDSHAKE))
        return variant if await self._variants.settled(variant) else primary

    def watch(self, config: UpstreamConfig) -> ResourceWatch:
        """The resources this server's connections of `config.variant` report updates of (kept across pools)."""
        return self._watches.setdefault((config.id, config.variant), ResourceWatch())

    def _start(self, config: UpstreamConfig) -> UpstreamPool:
        pool = UpstreamPool(config, self._hooks, self._pool_settings, self.watch(config))
        name = f"upstream:{config.slug}" + (f"({config.variant})" if config.variant else "")
        self._task_group.start_soon(pool.run, name=name)
        return pool

    def start_soon(self, function: Callable[[*Args], Coroutine[Any, Any, Any]], *args: *Args) -> None:
        """Run background work (e.g. a re-discovery) in the manager's task group."""
        self._task_group.start_soon(function, *args)

    def running_pool(self, server_id: int) -> UpstreamPool | None:
        """This server's main pool if one was started (never starts one)."""
        return self._pools.get(server_id)

    def running_pools(self, server_id: int) -> list[UpstreamPool]:
        """This server's started pools: the main one and its handshake variant."""
        pools = (self._pools.get(server_id), self._variants.pools.get(server_id))
        return [pool for pool in pools if pool is not None]

    def pools(self) -> list[UpstreamPool]:
        """Every started pool, variants included (each instance once: instance rows, metrics)."""
        return [*self._pools.values(), *self._variants.pools.values()]

    def stop_all(self) -> None:
        for pool in self._pools.values():
            pool.stop()
        self._pools.clear()
        self._variants.stop_all()


@asynccontextmanager
async def upstream_manager(
    hooks: SessionHooks | None = None, pool_settings: PoolSettings | None = None
) -> AsyncIterator[UpstreamManager]:
    """Run a manager for the duration of the block; every pool (and child process) ends with it."""
    async with anyio.create_task_group() as task_group:
        manager = UpstreamManager(task_group, hooks, pool_settings)
        try:
            yield manager
        finally:
            manager.stop_all()
