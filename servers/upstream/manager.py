"""The upstream sessions of one process, keyed by server id, run in one task group.

Owned by a long-lived task: the gateway's runner in a web process, a
`with_upstreams()` block in a Celery task, a test. Sessions start lazily on
first use and are replaced when the server's `config_version` moves on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskGroup

from servers.upstream.config import UpstreamConfig
from servers.upstream.session import SessionHooks, UpstreamSession


class UpstreamManager:
    def __init__(self, task_group: TaskGroup, hooks: SessionHooks | None = None) -> None:
        self._task_group = task_group
        self._hooks = hooks or SessionHooks()
        self._sessions: dict[int, UpstreamSession] = {}

    def session(self, config: UpstreamConfig) -> UpstreamSession:
        """The live session for this server, started or replaced as needed."""
        current = self._sessions.get(config.id)
        if current is not None and current.usable and current.config.config_version >= config.config_version:
            return current
        if current is not None:
            current.retire()  # finishes its in-flight calls, then stops its process
        session = UpstreamSession(config, self._hooks)
        self._sessions[config.id] = session
        self._task_group.start_soon(session.run, name=f"upstream:{config.slug}")
        return session

    def start_soon(self, function: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run background work (e.g. a re-discovery) in the manager's task group."""
        self._task_group.start_soon(function, *args)

    def get(self, server_id: int) -> UpstreamSession | None:
        return self._sessions.get(server_id)

    def sessions(self) -> list[UpstreamSession]:
        return list(self._sessions.values())

    def stop(self, server_id: int) -> None:
        if session := self._sessions.pop(server_id, None):
            session.stop()

    def stop_all(self) -> None:
        for session in self._sessions.values():
            session.stop()
        self._sessions.clear()


@asynccontextmanager
async def upstream_manager(hooks: SessionHooks | None = None) -> AsyncIterator[UpstreamManager]:
    """Run a manager for the duration of the block; every session (and child process) ends with it."""
    async with anyio.create_task_group() as task_group:
        manager = UpstreamManager(task_group, hooks)
        try:
            yield manager
        finally:
            manager.stop_all()
