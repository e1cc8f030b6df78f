"""The upstream instances of every web process, shared through Redis.

Each web process's gateway runs its own pools of upstream instances (``servers.upstream.pool``).
Every ``PUBLISH_EVERY`` seconds it stores a snapshot of them under a cache key of its own
(``upstream-instances:<host>:<pid>``), with a TTL, so a process that died drops out by itself.
``all_instances`` merges the keys of all processes (``/api/status/`` and the dashboard read it).
Nothing here holds the running gateway: the gateway passes its pools in.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any, Protocol, cast

from django.core.cache import cache
from django_redis.cache import RedisCache

from servers.outages import CACHE_ERRORS
from servers.upstream.config import UpstreamConfig
from servers.upstream.pool import InstanceSnapshot

logger = logging.getLogger(__name__)

PUBLISH_EVERY = 5.0  # seconds
KEY_TTL = 3 * PUBLISH_EVERY
KEY_PREFIX = "upstream-instances:"

Rows = dict[int, list[dict[str, Any]]]  # server id -> its instances, as plain data


class Pool(Protocol):
    """What is read of an upstream pool (``servers.upstream.pool.UpstreamPool``)."""

    @property
    def config(self) -> UpstreamConfig: ...

    def instances(self) -> list[InstanceSnapshot]: ...


def process_label() -> str:
    """This web process, as instance rows name it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def local_rows(pools: Iterable[Pool]) -> Rows:
    """These pools' instances per server id (taken in the pools' event loop); a server's handshake variant
    (servers.upstream.eras) adds its instances to the server's, labelled apart."""
    rows: Rows = defaultdict(list)
    for pool in pools:
        rows[pool.config.id].extend(asdict(instance) for instance in pool.instances())
    return dict(rows)


def publish(rows: Rows) -> None:
    """Store this process's instances (`local_rows`) for the others to read.

    Raises CACHE_ERRORS without Redis: the caller logs the outage once, and the next round comes in seconds.
    """
    cache.set(KEY_PREFIX + process_label(), rows, KEY_TTL)


def withdraw() -> None:
    """This process stops serving (gateway shutdown): its instances go at once, not after the TTL."""
    try:
        cache.delete(KEY_PREFIX + process_label())
    except CACHE_ERRORS:
        logger.warning("upstream instances: Redis unreachable, not withdrawn")


def all_instances() -> Rows:
    """Every live web process's instances per server id, each row naming its process; {} without Redis."""
    try:
        keys = list(cast(RedisCache, cache).iter_keys(KEY_PREFIX + "*"))  # django-redis's own method
        published = cache.get_many(keys)
    except CACHE_ERRORS:
        logger.warning("upstream instances: Redis unreachable")
        return {}
    merged: Rows = defaultdict(list)
    for key in sorted(published):
        process = key.removeprefix(KEY_PREFIX)
        for server_id, rows in published[key].items():
            merged[server_id].extend({**row, "process": process} for row in rows)
    return dict(merged)
