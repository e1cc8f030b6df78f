"""Daily partition maintenance, scheduled by beat (the schedule is in ``mcphub/celery.py``).

Each task runs under a Redis lock (django-redis ``cache.lock``): if two beats
were started by mistake, or a run is still going, the second run skips. The
PostgreSQL advisory lock in :mod:`logs.partitions` makes concurrent runs safe
anyway; the Redis lock just avoids doing the work twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from celery import shared_task

from logs import locks, partitions
from logs.conf import logs_conf

logger = logging.getLogger(__name__)

LOCK_TIMEOUT = 3600  # seconds: the lock expires even if a worker dies holding it
T = TypeVar("T")


def run_locked(name: str, work: Callable[[], T]) -> T | None:
    return locks.run_locked("logs", name, work, LOCK_TIMEOUT)


@shared_task
def ensure_partitions() -> list[str] | None:
    """Create the coming months' partitions (and drain DEFAULT)."""
    months_ahead = logs_conf().months_ahead
    return run_locked("ensure_partitions", lambda: partitions.ensure_partitions(months_ahead=months_ahead))


@shared_task
def drop_old_partitions() -> list[str] | None:
    """Retention: drop the months older than ``LOGS_RETENTION_MONTHS``."""
    config = logs_conf()

    def work() -> list[str]:
        # Months past retention with rows stuck in DEFAULT get their partition first, then go with it.
        partitions.ensure_partitions(months_ahead=config.months_ahead)
        return partitions.drop_partitions(older_than_months=config.retention_months)

    return run_locked("drop_old_partitions", work)
