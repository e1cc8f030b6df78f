"""Health checks: which servers are due, and one check of one server (probe, record, derive status).

A check runs under a Redis lock per server (django-redis `cache.lock`), so one
server is never probed twice at once, whatever the number of workers or beats.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import cache
from django.utils import timezone

from monitoring.models import HealthCheck
from monitoring.status import Thresholds, apply_status
from servers.discovery import probe
from servers.models import McpServer

logger = logging.getLogger(__name__)

LOCK_MARGIN = 30.0  # seconds beyond the probe's own bound before a dead worker's lock expires


def lock_key(server_id: int) -> str:
    return f"monitoring:check-lock:{server_id}"


def queued_key(server_id: int) -> str:
    return f"monitoring:check-queued:{server_id}"


@dataclass(frozen=True)
class Schedule:
    """What the fan-out needs of one enabled server."""

    id: int
    interval: int
    last_checked_at: datetime | None

    def due(self, now: datetime) -> bool:
        return self.last_checked_at is None or now - self.last_checked_at >= timedelta(seconds=self.interval)


def due_servers(servers: Iterable[Schedule], now: datetime) -> list[Schedule]:
    return [server for server in servers if server.due(now)]


def schedules() -> list[Schedule]:
    rows = McpServer.objects.filter(enabled=True).values_list("id", "health_check_interval", "last_checked_at")
    return [Schedule(pk, interval, last) for pk, interval, last in rows]


def probe_bound(server: McpServer) -> float:
    """Seconds a probe may take: connecting, then two round trips, each within the connect timeout."""
    return 3 * server.connect_timeout + 10


def run_health_check(server_id: int, *, due_only: bool = False) -> HealthCheck | None:
    """Probe the server once, store the HealthCheck, update its status; None if skipped.

    Skipped when the server is gone or disabled, when another check of it holds the lock, or
    (`due_only`, the scheduled path) when a check newer than its interval already exists.
    """
    server = McpServer.objects.filter(pk=server_id, enabled=True).first()
    if server is None:
        return None
    lock = cache.lock(lock_key(server_id), timeout=probe_bound(server) + LOCK_MARGIN)
    if not lock.acquire(blocking=False):
        logger.info("server %s: a check is already running, skipped", server.slug)
        return None
    try:
        server.refresh_from_db(fields=["last_checked_at"])
        if due_only and not Schedule(server.pk, server.health_check_interval, server.last_checked_at).due(
            timezone.now()
        ):
            return None
        return _check(server)
    finally:
        try:
            lock.release()
        except Exception:  # expired meanwhile (a very slow probe): nothing left to release
            logger.warning("server %s: check lock expired before release", server.slug)
        cache.delete(queued_key(server_id))


def _check(server: McpServer) -> HealthCheck:
    # The probe's round trips are bounded by the connect timeout, not the (longer) call timeout:
    # a health check asks "does it answer", and must finish well within the check interval.
    result = probe(server, call_timeout=min(server.call_timeout, server.connect_timeout))
    now = timezone.now()
    check = HealthCheck.objects.create(
        server=server,
        checked_at=now,
        ok=result.ok,
        latency_ms=result.latency_ms,
        error=result.error[:2000],
        era=result.era,
    )
    McpServer.objects.filter(pk=server.pk).update(last_checked_at=now)
    apply_status(server.pk, now=now)
    return check


def mark_stale(now: datetime | None = None) -> int:
    """Servers whose last check is too old (no worker ran it) become unknown; returns how many changed."""
    now = now or timezone.now()
    thresholds = Thresholds.from_settings()
    changed = 0
    rows = McpServer.objects.filter(enabled=True, last_checked_at__isnull=False).exclude(status="unknown")
    for server_id, interval, last in rows.values_list("id", "health_check_interval", "last_checked_at"):
        if (now - last).total_seconds() > thresholds.stale_factor * interval:
            changed += apply_status(server_id, now=now, thresholds=thresholds) is not None
    return changed


def prune(older_than_days: float, batch: int = 10_000) -> int:
    """Delete health checks older than this many days, in batches (short transactions); returns how many."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted = 0
    while True:
        ids = list(HealthCheck.objects.filter(checked_at__lt=cutoff).values_list("id", flat=True)[:batch])
        if not ids:
            return deleted
        deleted += HealthCheck.objects.filter(id__in=ids).delete()[0]
