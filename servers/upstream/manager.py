"""The upstream sessions of one process, keyed by server id, run in one task group.

Owned by a long-lived task: the gateway's runner in a web process, a
`with_upstreams()` block in a Celery task, a test. Each server's session is an
`UpstreamPool` (one instance unless configured otherwise); pools start lazily
on first use and are replaced when the server's `config_version` moves on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskGroup

from servers.upstream.config import UpstreamConfig
from servers.upstream.pool import PoolSettings, UpstreamPool
from servers.upstream.session import SessionHooks


class UpstreamManager:
    def __init__(
        self, task_group: TaskGroup, hooks: SessionHooks | None = None, pool_settings: PoolSettings | None = None
    ) -> None:
        self._task_group = task_group
        self._hooks = hooks or SessionHooks()
        self._pool_settings = pool_settings or PoolSettings()
        self._sessions: dict[int, UpstreamPool] = {}

    def session(self, config: UpstreamConfig) -> UpstreamPool:
        """The live pool for this server, started or replaced as needed."""
        current = self._sessions.get(config.id)
        if current is not None and current.usable and current.config.config_version >= config.config_version:
            return current
        if current is not None:
            current.retire()  # finishes its in-flight calls, then stops its process
        session = UpstreamPool(config, self._hooks, self._pool_settings)
        self._sessions[config.id] = session
        self._task_group.start_soon(session.run, name=f"upstream:{config.slug}")
        return session

    def start_soon(self, function: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run background work (e.g. a re-discovery) in the manager's task group."""
        self._task_group.start_soon(function, *args)

    def get(self, server_id: int) -> UpstreamPool | None:
        return self._sessions.get(server_id)

    def sessions(self) -> list[UpstreamPool]:
        return list(self._sessions.values())

    def stop(self, server_id: int) -> None:
        if session := self._sessions.pop(server_id, None):
            session.stop()

    def stop_all(self) -> None:
        for session in self._sessions.values():
            session.stop()
        self._sessions.clear()


@asynccontextmanager
async def upstream_manager(
    hooks: SessionHooks | None = None, pool_settings: PoolSettings | None = None
) -> AsyncIterator[UpstreamManager]:
    """Run a manager for the duration of the block; every session (and child process) ends with it."""
    async with anyio.create_task_group() as task_group:
        manager = UpstreamManager(task_group, hooks, pool_settings)
        try:
            yield manager
        finally:
            manager.stop_all()
