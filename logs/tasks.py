"""Daily partition maintenance, scheduled by beat (``CELERY_BEAT_SCHEDULE`` in settings).

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
from django.conf import settings

from logs import locks, partitions

logger = logging.getLogger(__name__)

LOCK_TIMEOUT = 3600  # seconds: the lock expires even if a worker dies holding it
T = TypeVar("T")


def logs_settings() -> dict[str, int]:
    return {"RETENTION_MONTHS": 6, "MONTHS_AHEAD": 3, **getattr(settings, "LOGS", {})}


def run_locked(name: str, work: Callable[[], T]) -> T | None:
    return locks.run_locked("logs", name, work, LOCK_TIMEOUT)


@shared_task(name="logs.ensure_partitions")
def ensure_partitions_task() -> list[str] | None:
    """Create the coming months' partitions (and drain DEFAULT)."""
    months_ahead = int(logs_settings()["MONTHS_AHEAD"])
    return run_locked("ensure_partitions", lambda: partitions.ensure_partitions(months_ahead=months_ahead))


@shared_task(name="logs.drop_old_partitions")
def drop_old_partitions_task() -> list[str] | None:
    """Retention: drop the months older than ``LOGS["RETENTION_MONTHS"]``."""
    config = logs_settings()

    def work() -> list[str]:
        # Months past retention with rows stuck in DEFAULT get their partition first, then go with it.
        partitions.ensure_partitions(months_ahead=int(config["MONTHS_AHEAD"]))
        return partitions.drop_partitions(older_than_months=int(config["RETENTION_MONTHS"]))

    return run_locked("drop_old_partitions", work)
