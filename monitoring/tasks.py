"""Celery tasks of monitoring: the health-check fan-out, one check, metric rollups, pruning (beat: mcphub/celery.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

from logs import locks
from monitoring import checks, metrics
from monitoring.conf import monitoring_conf

logger = logging.getLogger(__name__)

T = TypeVar("T")


@shared_task(ignore_result=True)
def check_server(server_id: int, due_only: bool = False) -> None:
    """Check one server now (also sent by name from the gateway after a successful breaker trial)."""
    checks.run_health_check(server_id, due_only=due_only)


@shared_task(ignore_result=True)
def schedule_checks() -> int:
    """Beat's fan-out: queue a check for every enabled server whose interval has passed; returns how many.

    A queued marker (Redis, expiring with the task) keeps a server from being queued again while
    its check waits or runs; the task itself expires after one interval, so a backlog is dropped
    rather than run late.
    """
    now = timezone.now()
    period = monitoring_conf().schedule_seconds
    queued = 0
    for server in checks.due_servers(checks.schedules(), now):
        expires = max(float(server.interval), period)
        if not cache.add(checks.queued_key(server.id), 1, timeout=expires):
            continue
        check_server.apply_async(args=[server.id], kwargs={"due_only": True}, expires=expires)
        queued += 1
    checks.mark_stale(now)
    return queued


@shared_task(ignore_result=True)
def prune_health_checks() -> int:
    """Retention: delete health checks older than `MONITORING_RETENTION_DAYS`."""
    deleted = checks.prune(monitoring_conf().retention_days)
    logger.info("pruned %d health checks", deleted)
    return deleted


def run_locked(name: str, work: Callable[[], T], timeout: int) -> T | None:
    """Two beats never roll up at once."""
    return locks.run_locked("monitoring", name, work, timeout)


@shared_task
def rollup_minutes() -> int | None:
    return run_locked("rollup_minutes", metrics.rollup_minutes, timeout=300)


@shared_task
def rollup_hours() -> int | None:
    return run_locked("rollup_hours", metrics.rollup_hours, timeout=3000)


@shared_task
def prune_metrics() -> dict[str, int] | None:
    return run_locked("prune_metrics", metrics.prune, timeout=3600)
