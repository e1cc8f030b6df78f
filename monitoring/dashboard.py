"""What the dashboard shows: server cards, totals, the live tail of calls, the status timeline.

Shared by the server-rendered pages (first paint) and the WebSocket consumer (snapshots and
periodic figures), so both show the same numbers. Status and recent call metrics come from
the cached overview behind ``/api/status/`` (``monitoring.services.status_overview``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q, Sum
from django.urls import reverse
from django.utils import timezone

from logs.models import RequestLog
from monitoring import charts, metrics
from monitoring.metrics import floor_to
from monitoring.models import MetricBucket, StatusChange
from monitoring.services import CACHE_ERRORS, status_overview
from servers.models import McpServer, Status
from servers.upstream.stderr import recent_lines

logger = logging.getLogger(__name__)

SPARK_MINUTES = 60
TAIL_LENGTH = 20
TIMELINE_LENGTH = 12
STATUS_ORDER = (Status.UP, Status.DEGRADED, Status.DOWN, Status.UNKNOWN)


def is_critical(event: dict[str, Any]) -> bool:
    """A server going down, or coming back from down: operators must see these at once."""
    return event.get("new") == Status.DOWN or (
        event.get("old") == Status.DOWN and event.get("new") in (Status.UP, Status.DEGRADED)
    )


def spark_counts(now: datetime | None = None, server_id: int | None = None) -> dict[int, list[int]]:
    """Calls per minute of every server (or one) over the last hour (oldest first), from minute buckets (1 query)."""
    until = floor_to(now or timezone.now(), MetricBucket.Resolution.MINUTE) + timedelta(minutes=1)
    since = until - timedelta(minutes=SPARK_MINUTES)
    minute = MetricBucket.Resolution.MINUTE
    buckets = MetricBucket.objects.filter(resolution=minute, bucket__gte=since, bucket__lt=until)
    if server_id is not None:
        buckets = buckets.filter(server_id=server_id)
    rows = buckets.values("server_id", "bucket").annotate(calls=Sum("count"))
    series: dict[int, list[int]] = {}
    for row in rows:
        index = int((row["bucket"] - since).total_seconds() // 60)
        series.setdefault(row["server_id"], [0] * SPARK_MINUTES)[index] = int(row["calls"] or 0)
    return series


def server_cards(now: datetime | None = None, server_id: int | None = None) -> list[dict[str, Any]]:
    """One card per enabled server (or just the one): the status overview row plus transport, tools and sparkline."""
    overview = status_overview()
    servers = McpServer.objects.filter(enabled=True)
    if server_id is not None:
        servers = servers.filter(pk=server_id)
    extra = {
        row["id"]: row
        for row in servers.annotate(tool_count=Count("tools", filter=Q(tools__enabled=True))).values(
            "id", "transport", "tool_count"
        )
    }
    sparks = spark_counts(now, server_id)
    cards = []
    for row in overview["servers"]:
        if server_id is not None and row["id"] != server_id:
            continue
        more = extra.get(row["id"], {})
        spark = sparks.get(row["id"], [0] * SPARK_MINUTES)
        cards.append(
            {
                **row,
                "transport": more.get("transport", ""),
                "tools": more.get("tool_count", 0),
                "instance_count": len(row.get("instances", ())),
                "spark": spark,
                "spark_points": charts.sparkline(spark),
            }
        )
    return cards


def totals(cards: list[dict[str, Any]]) -> dict[str, Any]:
    """Servers per status, calls per minute and the call-weighted error rate across servers."""
    counts = {str(status): 0 for status in STATUS_ORDER}
    for card in cards:
        counts[card["status"]] = counts.get(card["status"], 0) + 1
    calls = sum(card["calls_per_minute"] for card in cards)
    errors = sum(card["calls_per_minute"] * (card["error_rate"] or 0) for card in cards)
    return {
        "servers": len(cards),
        "counts": counts,
        "calls_per_minute": round(calls, 3),
        "error_rate": round(errors / calls, 4) if calls else None,
    }


def recent_calls(limit: int = TAIL_LENGTH, now: datetime | None = None) -> list[dict[str, Any]]:
    """The newest calls of the last hour (a bounded window: the log is partitioned by month)."""
    rows = (
        RequestLog.objects.recent(hours=1, now=now)
        .newest_first()
        .values("server_id", "server_slug", "tool", "outcome", "latency_ms", "created_at")[:limit]
    )
    return [call_event(row) for row in rows]


def call_event(row: dict[str, Any]) -> dict[str, Any]:
    """A call as the live tail shows it (same keys as the events of ``servers.gateway.recorder``)."""
    created = row["created_at"]
    return {
        "server_id": row["server_id"],
        "server": row["server_slug"],
        "tool": row["tool"],
        "outcome": row["outcome"],
        "latency_ms": round(float(row["latency_ms"]), 2),
        "at": created.isoformat() if isinstance(created, datetime) else created,
    }


def timeline(limit: int = TIMELINE_LENGTH) -> list[dict[str, Any]]:
    """The latest status changes, newest first."""
    rows = StatusChange.objects.select_related("server").order_by("-changed_at")[:limit]
    return [
        {
            "server_id": row.server_id,
            "slug": row.server.slug,
            "old": row.old,
            "new": row.new,
            "reason": row.reason,
            "changed_at": row.changed_at.isoformat(),
        }
        for row in rows
    ]


def snapshot(reason: str) -> dict[str, Any]:
    """The whole dashboard state: the first frame of a connection, and the resync after an overflow."""
    cards = server_cards()
    return {
        "type": "snapshot",
        "reason": reason,
        "generated_at": timezone.now().isoformat(),
        "servers": [figures(card) for card in cards],
        "totals": totals(cards),
        "calls": recent_calls(),
        "timeline": timeline(),
    }


FIGURE_KEYS = (
    "id",
    "slug",
    "name",
    "status",
    "status_changed_at",
    "transport",
    "tools",
    "instance_count",
    "latency_ms",
    "calls_per_minute",
    "error_rate",
    "p95_ms",
    "last_error",
    "spark",
)


def figures(card: dict[str, Any]) -> dict[str, Any]:
    """The part of a card that the live page updates."""
    return {key: card.get(key) for key in FIGURE_KEYS}


def all_figures() -> list[dict[str, Any]]:
    return [figures(card) for card in server_cards()]


# --- the server page --------------------------------------------------------------------------

WINDOW_FORMATS = {"1h": "%H:%M", "24h": "%H:%M", "7d": "%b %d"}


def window_summary(series: metrics.Series) -> dict[str, Any]:
    """Totals of one window: calls, errors, error rate and the call-weighted p50/p95/p99."""
    calls = sum(point.count for point in series.points)
    errors = sum(point.errors for point in series.points)

    def weighted(attribute: str) -> float | None:
        if not calls:
            return None
        return sum((getattr(point, attribute) or 0) * point.count for point in series.points) / calls

    return {
        "calls": calls,
        "errors": errors,
        "error_rate": errors / calls if calls else None,
        "p50": weighted("p50"),
        "p95": weighted("p95"),
        "p99": weighted("p99"),
    }


def server_page(server: McpServer) -> dict[str, Any]:
    """Everything the server page shows: charts per window, tools, instances, stderr, status and scaling history."""
    windows = []
    for name, fmt in WINDOW_FORMATS.items():
        series = metrics.series(name, server_ids=[server.pk])
        windows.append(
            {
                "name": name,
                "summary": window_summary(series),
                "latency": charts.latency_chart(series, fmt),
                "calls": charts.calls_chart(series, fmt),
            }
        )
    card = next(iter(server_cards(server_id=server.pk)), None)
    return {
        "server": server,
        "card": card,
        "windows": windows,
        "tools": list(server.tools.order_by("name")),
        "stderr": stderr_lines(server.pk),
        "changes": list(server.status_changes.order_by("-changed_at")[:TIMELINE_LENGTH]),
        "instances": card["instances"] if card else [],
        "scaling": list(server.scaling_events.order_by("-at", "-id")[:TIMELINE_LENGTH]),
        "admin_url": reverse("admin:servers_mcpserver_change", args=[server.pk]),
    }


def stderr_lines(server_id: int, limit: int = 100) -> list[str]:
    """The server's recent stderr lines (kept in Redis); empty when Redis does not answer."""
    try:
        return recent_lines(server_id, limit)
    except CACHE_ERRORS:
        logger.warning("stderr of server %s: Redis unreachable", server_id)
        return []
