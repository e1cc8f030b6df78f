"""The upstream pools of one process, keyed by server id, run in one task group.

Owned by a long-lived task: the gateway's runner in a web process, an
`upstream_manager()` block in a Celery task (discovery, probes), a test. Each
server is served by an `UpstreamPool` (one instance unless configured otherwise);
pools start lazily on first use and are replaced when the server's
`config_version` moves on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVarTuple

import anyio
from anyio.abc import TaskGroup

from servers.upstream.config import UpstreamConfig
from servers.upstream.pool import PoolSettings, UpstreamPool
from servers.upstream.session import SessionHooks

Args = TypeVarTuple("Args")


class UpstreamManager:
    def __init__(
        self, task_group: TaskGroup, hooks: SessionHooks | None = None, pool_settings: PoolSettings | None = None
    ) -> None:
        self._task_group = task_group
        self._hooks = hooks or SessionHooks()
        self._pool_settings = pool_settings or PoolSettings()
        self._pools: dict[int, UpstreamPool] = {}

    def pool(self, config: UpstreamConfig) -> UpstreamPool:
        """The live pool for this server, started or replaced as needed."""
        current = self._pools.get(config.id)
        if current is not None and current.usable and current.config.config_version >= config.config_version:
            return current
        if current is not None:
            current.retire()  # finishes its in-flight calls, then stops its process
        pool = UpstreamPool(config, self._hooks, self._pool_settings)
        self._pools[config.id] = pool
        self._task_group.start_soon(pool.run, name=f"upstream:{config.slug}")
        return pool

    def start_soon(self, function: Callable[[*Args], Coroutine[Any, Any, Any]], *args: *Args) -> None:
        """Run background work (e.g. a re-discovery) in the manager's task group."""
        self._task_group.start_soon(function, *args)

    def running_pool(self, server_id: int) -> UpstreamPool | None:
        """This server's pool if one was started (never starts one)."""
        return self._pools.get(server_id)

    def pools(self) -> list[UpstreamPool]:
        return list(self._pools.values())

    def stop_all(self) -> None:
        for pool in self._pools.values():
            pool.stop()
        self._pools.clear()


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
