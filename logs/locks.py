"""Run scheduled work under a Redis lock, so two beats (or a slow previous run) never do it twice.

In `logs` because it is the bottom of the app graph: `monitoring` uses it too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache

logger = logging.getLogger(__name__)

T = TypeVar("T")


def run_locked(namespace: str, name: str, work: Callable[[], T], timeout: int) -> T | None:
    """Run `work` under the lock `<namespace>:lock:<name>`; None (and a log line) if held elsewhere.

    `timeout` makes the lock expire even if a worker dies holding it.
    """
    lock = cache.lock(f"{namespace}:lock:{name}", timeout=timeout)
    if not lock.acquire(blocking=False):
        logger.info("%s: already running elsewhere, skipped", name)
        return None
    try:
        return work()
    finally:
        lock.release()
