"""Metric buckets: rolled up from the request log, queried by the REST API, Prometheus and the dashboard.

The rollup is one SQL statement per run: ``INSERT ... SELECT ... GROUP BY`` over a bounded
window of the request log (so PostgreSQL prunes partitions), with ``percentile_cont`` for the
latency percentiles, upserted with ``ON CONFLICT ... DO UPDATE``. Each run recomputes whole
buckets from the log, so running it twice gives the same rows and a late row updates its
bucket on the next run within ``METRICS_ROLLUP_REDO_MINUTES``. Hour buckets are computed from the
log too, never from minute buckets: percentiles do not compose.

Latencies include every outcome (a timeout's latency is the time the caller waited).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import F, Max, Sum
from django.utils import timezone

from logs.models import TABLE as REQUEST_LOG_TABLE
from logs.outcomes import Outcome
from monitoring.conf import monitoring_conf
from monitoring.models import MetricBucket

logger = logging.getLogger(__name__)

Resolution = MetricBucket.Resolution
OUTCOME_COLUMNS: tuple[str, ...] = tuple(Outcome.values)  # MetricBucket has one count column per outcome
STEP = {Resolution.MINUTE: timedelta(minutes=1), Resolution.HOUR: timedelta(hours=1)}
BUCKET_TABLE = MetricBucket._meta.db_table


def floor_to(moment: datetime, resolution: str) -> datetime:
    """The start of the minute or hour containing ``moment``."""
    moment = moment.replace(second=0, microsecond=0)
    return moment.replace(minute=0) if resolution == Resolution.HOUR else moment


# --- rollup ------------------------------------------------------------------------------------

_UPDATED = (
    "server_slug",
    "count",
    *OUTCOME_COLUMNS,
    "latency_avg",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "latency_max",
    "request_bytes",
    "response_bytes",
)
_OUTCOME_COUNTS = ",\n    ".join(f"count(*) FILTER (WHERE outcome = '{name}')" for name in OUTCOME_COLUMNS)
ROLLUP_SQL = f"""
INSERT INTO {BUCKET_TABLE} (
    server_id, tool, resolution, bucket, {", ".join(_UPDATED)}
)
SELECT
    server_id, tool, %(resolution)s, date_trunc(%(unit)s, created_at, 'UTC') AS bucket,
    (array_agg(server_slug ORDER BY created_at DESC))[1],
    count(*),
    {_OUTCOME_COUNTS},
    avg(latency_ms),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms),
    percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms),
    max(latency_ms),
    sum(request_bytes),
    sum(response_bytes)
FROM {REQUEST_LOG_TABLE}
WHERE created_at >= %(since)s AND created_at < %(until)s AND server_id IS NOT NULL
GROUP BY server_id, tool, bucket
ON CONFLICT (resolution, bucket, server_id, tool) DO UPDATE SET
    {", ".join(f"{column} = EXCLUDED.{column}" for column in _UPDATED)}
"""


def rollup(resolution: str, since: datetime, until: datetime) -> int:
    """Recompute every bucket of ``resolution`` in ``since``..``until`` (aligned to buckets); rows upserted."""
    if floor_to(since, resolution) != since or floor_to(until, resolution) != until:
        raise ValueError("since and until must be bucket boundaries: partial buckets would be overwritten")
    unit = "hour" if resolution == Resolution.HOUR else "minute"
    with connection.cursor() as cursor:
        cursor.execute(ROLLUP_SQL, {"resolution": str(resolution), "unit": unit, "since": since, "until": until})
        return cursor.rowcount


def rollup_minutes(now: datetime | None = None) -> int:
    """The current minute and the ``METRICS_ROLLUP_REDO_MINUTES`` before it (late rows land there)."""
    current = floor_to(now or timezone.now(), Resolution.MINUTE)
    redo = monitoring_conf().rollup_redo_minutes
    return rollup(Resolution.MINUTE, current - timedelta(minutes=redo), current + timedelta(minutes=1))


def rollup_hours(now: datetime | None = None) -> int:
    """The current (partial) hour and the ``METRICS_ROLLUP_REDO_HOURS`` complete hours before it."""
    current = floor_to(now or timezone.now(), Resolution.HOUR)
    redo = monitoring_conf().rollup_redo_hours
    return rollup(Resolution.HOUR, current - timedelta(hours=redo), current + timedelta(hours=1))


def prune(now: datetime | None = None) -> dict[str, int]:
    """Retention: delete minute and hour buckets older than their settings; rows deleted per resolution."""
    now = now or timezone.now()
    config = monitoring_conf()
    deleted: dict[str, int] = {}
    for resolution, days in (
        (Resolution.MINUTE, config.minute_retention_days),
        (Resolution.HOUR, config.hour_retention_days),
    ):
        old = MetricBucket.objects.filter(resolution=resolution, bucket__lt=now - timedelta(days=days))
        deleted[str(resolution)] = old.delete()[0]
    return deleted


# --- queries -------------------------------------------------------------------------------------------

WINDOWS: dict[str, tuple[str, int]] = {
    # name: (bucket resolution, number of buckets)
    "1h": (Resolution.MINUTE, 60),
    "24h": (Resolution.HOUR, 24),
    "7d": (Resolution.HOUR, 7 * 24),
}


@dataclass(frozen=True)
class Point:
    bucket: datetime
    count: int
    errors: int
    error_rate: float | None
    latency_avg: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    latency_max: float | None


@dataclass(frozen=True)
class Series:
    window: str
    resolution: str
    since: datetime
    until: datetime
    exact_percentiles: bool
    points: list[Point]


def series(
    window: str, *, server_ids: Iterable[int] | None = None, tool: str | None = None, now: datetime | None = None
) -> Series:
    """One point per bucket of ``window`` (empty buckets included, with count 0).

    ``server_ids`` None means every server. A point merging several (server, tool) buckets has
    exact counts, but its percentiles are the count-weighted mean of the buckets' percentiles: an
    approximation (``exact_percentiles`` is False then), since percentiles do not compose.
    """
    resolution, buckets = WINDOWS[window]
    step = STEP[resolution]
    until = floor_to(now or timezone.now(), resolution) + step
    since = until - buckets * step
    rows = MetricBucket.objects.filter(resolution=resolution, bucket__gte=since, bucket__lt=until)
    if server_ids is not None:
        rows = rows.filter(server_id__in=list(server_ids))
    if tool is not None:
        rows = rows.filter(tool=tool)
    by_bucket: dict[datetime, list[MetricBucket]] = {}
    for row in rows.order_by("bucket"):
        by_bucket.setdefault(row.bucket, []).append(row)
    points = [_merge(since + i * step, by_bucket.get(since + i * step, [])) for i in range(buckets)]
    exact = all(len(group) <= 1 for group in by_bucket.values())
    return Series(window, str(resolution), since, until, exact, points)


def _merge(bucket: datetime, rows: list[MetricBucket]) -> Point:
    count = sum(row.count for row in rows)
    if not count:
        return Point(bucket, 0, 0, None, None, None, None, None, None)
    errors = count - sum(row.ok for row in rows)

    def weighted(attribute: str) -> float:
        return sum(getattr(row, attribute) * row.count for row in rows) / count

    return Point(
        bucket=bucket,
        count=count,
        errors=errors,
        error_rate=errors / count,
        latency_avg=weighted("latency_avg"),
        p50=weighted("latency_p50"),
        p95=weighted("latency_p95"),
        p99=weighted("latency_p99"),
        latency_max=max(row.latency_max for row in rows),
    )


def totals_since(since: datetime, server_ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """Per (server, tool), in minute buckets from ``since`` on: ``slug``, ``calls``, ``<outcome>_calls``
    and ``latency_sum`` (ms)."""
    rows = MetricBucket.objects.filter(resolution=Resolution.MINUTE, bucket__gte=since)
    if server_ids is not None:
        rows = rows.filter(server_id__in=list(server_ids))
    return list(
        rows.values("server_id", "tool")
        .annotate(
            slug=Max("server_slug"),
            latency_sum=Sum(F("latency_avg") * F("count")),
            calls=Sum("count"),
            # Not named like the columns: an annotation would shadow its column in F() above.
            **{f"{name}_calls": Sum(name) for name in OUTCOME_COLUMNS},
        )
        .order_by("server_id", "tool")
    )
