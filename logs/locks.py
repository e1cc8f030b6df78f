"""Run scheduled work under a Redis lock, so two beats (or a slow previous run) never do it twice.

In `logs` because it is the bottom of the app graph: `monitoring` uses it too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar, cast

from django.core.cache import cache
from django_redis.cache import RedisCache
from redis.lock import Lock

logger = logging.getLogger(__name__)

T = TypeVar("T")


def run_locked(namespace: str, name: str, work: Callable[[], T], timeout: int) -> T | None:
    """Run `work` under the lock `<namespace>:lock:<name>`; None (and a log line) if held elsewhere.

    `timeout` makes the lock expire even if a worker dies holding it.
    """
    # django-redis's cache (settings.CACHES) has lock(), which BaseCache, as typed, has not; its key gets the
    # cache's prefix and version like every other cache key.
    lock: Lock = cast(RedisCache, cache).lock(f"{namespace}:lock:{name}", timeout=timeout)
    if not lock.acquire(blocking=False):
        logger.info("%s: already running elsewhere, skipped", name)
        return None
    try:
        return work()
    finally:
        lock.release()
