"""Every server's status with its latest check and recent call metrics, cached in Redis.

`/api/status/` and `/api/health/` both read `status_overview()`: a Redis hit
(TTL `monitoring_conf().status_cache_ttl`, 2 s) or, on a miss, one computation from
PostgreSQL that refills the cache. With Redis unreachable the overview is
computed from the database on every call: slower, never an error.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db.models import F, FloatField, OuterRef, Subquery, Sum
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from monitoring.conf import monitoring_conf
from monitoring.models import REACHABLE, HealthCheck, MetricBucket
from servers.gateway.instances import all_instances
from servers.models import McpServer
from servers.outages import CACHE_ERRORS

logger = logging.getLogger(__name__)

STATUS_CACHE_KEY = "monitoring:status"
STATUS_JSON_KEY = "monitoring:status:json"  # the same overview, rendered: the unfiltered request's answer


def compute_overview(now: datetime | None = None) -> dict[str, Any]:
    """Every enabled server's status, last check, metrics over the last few minutes (3 queries) and instances."""
    now = now or timezone.now()
    minutes = monitoring_conf().metrics_window_minutes
    latest = HealthCheck.objects.filter(server=OuterRef("pk")).order_by("-checked_at")
    servers = (
        McpServer.objects.filter(enabled=True)
        .order_by("slug")
        .annotate(
            last_latency=Subquery(latest.values("latency_ms")[:1]),
            last_error=Subquery(latest.values("error")[:1]),
        )
        .values("id", "slug", "name", "status", "status_changed_at", "last_checked_at", "last_latency", "last_error")
    )
    metrics = {
        row["server_id"]: row
        for row in MetricBucket.objects.filter(
            resolution=MetricBucket.Resolution.MINUTE, bucket__gte=now - timedelta(minutes=minutes), bucket__lte=now
        )
        .values("server_id")
        .annotate(
            calls=Sum("count"),
            ok_calls=Sum("ok"),
            p95_weighted=Sum(F("latency_p95") * F("count"), output_field=FloatField()),
        )
    }
    instances = all_instances()
    rows = [_row(server, metrics.get(server["id"]), minutes, instances.get(server["id"], [])) for server in servers]
    return {"generated_at": now.isoformat(), "window_minutes": minutes, "servers": rows}


def _row(
    server: dict[str, Any], metric: dict[str, Any] | None, minutes: int, instances: list[dict[str, Any]]
) -> dict[str, Any]:
    calls = int(metric["calls"] or 0) if metric else 0
    return {
        "id": server["id"],
        "slug": server["slug"],
        "name": server["name"],
        "status": server["status"],
        "status_changed_at": _iso(server["status_changed_at"]),
        "latency_ms": round(server["last_latency"], 2) if server["last_latency"] is not None else None,
        "last_checked_at": _iso(server["last_checked_at"]),
        "last_error": server["last_error"] or "",
        "calls_per_minute": round(calls / minutes, 3),
        "error_rate": round(1 - int(metric["ok_calls"] or 0) / calls, 4) if calls else None,
        # Percentiles do not add up across buckets: a count-weighted mean of the minutes' p95 approximates it.
        "p95_ms": round(metric["p95_weighted"] / calls, 2) if calls else None,
        "instances": instances,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def refresh_status_cache() -> dict[str, Any]:
    """Compute the overview and store it (after a status change, so readers see it at once)."""
    return _refresh()[0]


def _refresh() -> tuple[dict[str, Any], bytes]:
    overview = compute_overview()
    rendered = JSONRenderer().render(overview)
    try:
        ttl = monitoring_conf().status_cache_ttl
        cache.set_many({STATUS_CACHE_KEY: overview, STATUS_JSON_KEY: rendered}, ttl)
    except CACHE_ERRORS:
        logger.warning("status cache: Redis unreachable, not stored", exc_info=True)
    return overview, rendered


def status_overview() -> dict[str, Any]:
    """The overview from Redis, else computed from the database (and stored when Redis answers)."""
    try:
        cached = cache.get(STATUS_CACHE_KEY)
    except CACHE_ERRORS:
        logger.warning("status cache: Redis unreachable, computing from the database")
        return compute_overview()
    if cached is not None:
        return cached
    return refresh_status_cache()


def clear_status_cache() -> None:
    cache.delete_many([STATUS_CACHE_KEY, STATUS_JSON_KEY])


def status_json() -> bytes:
    """The whole overview as JSON, as stored (no per-request rendering): the hot path of /api/status/."""
    try:
        cached = cache.get(STATUS_JSON_KEY)
    except CACHE_ERRORS:
        logger.warning("status cache: Redis unreachable, computing from the database")
        return JSONRenderer().render(compute_overview())
    if cached is not None:
        return cached
    return _refresh()[1]


def health_summary(overview: dict[str, Any]) -> dict[str, Any]:
    """Healthy (up or degraded) among the enabled servers, and the count per status."""
    statuses = [row["status"] for row in overview["servers"]]
    counts = {status: statuses.count(status) for status in ("up", "degraded", "down", "unknown")}
    healthy = sum(1 for status in statuses if status in REACHABLE)
    return {"healthy": healthy, "total": len(statuses), "counts": counts, "generated_at": overview["generated_at"]}
