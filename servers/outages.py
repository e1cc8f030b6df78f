"""What this process knows of its dependencies (PostgreSQL, Redis): one log line when one goes away, one when back.

A dependency that is down makes every periodic task fail every time; logging each failure
(with its traceback) would bury the log. Callers (the gateway's tasks, Django's request threads)
report each outcome; only the changes are logged.
"""

from __future__ import annotations

import logging
import threading
import time

from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


class Dependency:
    """One dependency as this process sees it: up, or down since a given moment."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.down_since: float | None = None  # time.monotonic() of the first failure
        self._lock = threading.Lock()

    def failed(self, what: str, error: BaseException) -> None:
        """`what` could not reach the dependency: a warning the first time, nothing while it stays down."""
        with self._lock:
            if self.down_since is not None:
                return
            self.down_since = time.monotonic()
        logger.warning("%s unreachable (%s: %s); carrying on without it", self.name, what, _summary(error))

    def succeeded(self) -> None:
        """The dependency answered: one line if it was down."""
        if self.down_since is None:
            return  # the common case, without the lock
        with self._lock:
            down_since, self.down_since = self.down_since, None
        if down_since is not None:
            logger.warning("%s reachable again after %.0f s", self.name, time.monotonic() - down_since)


def _summary(error: BaseException) -> str:
    """The error's first line: the cause, without a traceback."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


# What a Redis outage raises through Django's cache (django-redis).
CACHE_ERRORS = (ConnectionInterrupted, RedisError, OSError)

database = Dependency("PostgreSQL")
redis = Dependency("Redis")
