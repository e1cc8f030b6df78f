"""The upstream instances of every web process, shared through Redis.

Each web process's gateway runs its own pools of upstream instances (``servers.upstream.pool``).
Every ``PUBLISH_EVERY`` seconds it stores a snapshot of them under a cache key of its own,
with a TTL, so a process that died drops out by itself. ``/api/status/`` and the dashboard
merge the keys of all processes; Prometheus reports the scraped process's own pools.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any, Protocol

from django.core.cache import cache

from monitoring.services import CACHE_ERRORS

logger = logging.getLogger(__name__)

PUBLISH_EVERY = 5.0  # seconds
KEY_TTL = 3 * PUBLISH_EVERY
KEY_PREFIX = "upstream-instances:"


class Pool(Protocol):
    """What is read of an upstream pool (``servers.upstream.pool.UpstreamPool``)."""

    @property
    def config(self) -> Any: ...

    def instances(self) -> list[Any]: ...

    def sessions(self) -> list[Any]: ...


def gateway_pools() -> list[Pool]:
    """This process's pools (none before its MCP gateway has started)."""
    from servers.gateway.app import runner

    upstreams = runner.gateway.upstreams if runner.gateway is not None else None
    return upstreams.pools() if upstreams is not None else []


def process_label() -> str:
    """This web process, as instance rows name it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def local_rows(pools: Iterable[Pool]) -> dict[int, list[dict[str, Any]]]:
    """This process's instances per server id."""
    return {pool.config.id: [asdict(instance) for instance in pool.instances()] for pool in pools}


def publish(rows: dict[int, list[dict[str, Any]]]) -> None:
    """Store this process's instances (`local_rows`, taken in the gateway's loop) for the others to read.

    Raises CACHE_ERRORS without Redis: the caller logs the outage once, and the next round comes in seconds.
    """
    cache.set(KEY_PREFIX + process_label(), rows, KEY_TTL)


def withdraw() -> None:
    """This process stops serving (gateway shutdown): its instances go at once, not after the TTL."""
    try:
        cache.delete(KEY_PREFIX + process_label())
    except CACHE_ERRORS:
        logger.warning("upstream instances: Redis unreachable, not withdrawn")


def all_instances() -> dict[int, list[dict[str, Any]]]:
    """Every live web process's instances per server id, each row naming its process; {} without Redis."""
    try:
        keys = list(cache.iter_keys(KEY_PREFIX + "*"))
        published = cache.get_many(keys)
    except CACHE_ERRORS:
        logger.warning("upstream instances: Redis unreachable")
        return {}
    merged: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for key in sorted(published):
        process = key.removeprefix(KEY_PREFIX)
        for server_id, rows in published[key].items():
            merged[server_id].extend({**row, "process": process} for row in rows)
    return dict(merged)
