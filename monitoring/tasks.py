"""Celery tasks of monitoring: the health-check fan-out, one check, pruning (scheduled in settings)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

from monitoring import checks
from monitoring.status import monitoring_settings

logger = logging.getLogger(__name__)


@shared_task(name="monitoring.tasks.check_server", ignore_result=True)
def check_server(server_id: int, due_only: bool = False) -> None:
    """Check one server now (also sent by name from the gateway after a successful breaker trial)."""
    checks.run_health_check(server_id, due_only=due_only)


@shared_task(name="monitoring.tasks.schedule_checks", ignore_result=True)
def schedule_checks() -> int:
    """Beat's fan-out: queue a check for every enabled server whose interval has passed; returns how many.

    A queued marker (Redis, expiring with the task) keeps a server from being queued again while
    its check waits or runs; the task itself expires after one interval, so a backlog is dropped
    rather than run late.
    """
    now = timezone.now()
    period = float(monitoring_settings()["SCHEDULE_SECONDS"])
    queued = 0
    for server in checks.due_servers(checks.schedules(), now):
        expires = max(float(server.interval), period)
        if not cache.add(checks.queued_key(server.id), 1, timeout=expires):
            continue
        check_server.apply_async(args=[server.id], kwargs={"due_only": True}, expires=expires)
        queued += 1
    checks.mark_stale(now)
    return queued


@shared_task(name="monitoring.tasks.prune_health_checks", ignore_result=True)
def prune_health_checks() -> int:
    """Retention: delete health checks older than `MONITORING["RETENTION_DAYS"]`."""
    deleted = checks.prune(float(monitoring_settings()["RETENTION_DAYS"]))
    logger.info("pruned %d health checks", deleted)
    return deleted
