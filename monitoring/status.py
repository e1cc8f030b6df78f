"""A server's status, derived from its recent health checks; written by compare-and-set.

`derive_status` is a plain function of the checks (newest first) and the
thresholds; `apply_status` is the one service function that writes a change:
the server row is updated only if its status is still the one we read, so two
concurrent checks that reach the same conclusion record one `StatusChange`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from monitoring.conf import monitoring_conf
from monitoring.models import HealthCheck, StatusChange
from servers.models import McpServer, Status

logger = logging.getLogger(__name__)

STATUS_GROUP = "status"  # Channels group of live status events (the dashboard's consumer joins it)
REACHABLE = frozenset({Status.UP, Status.DEGRADED})


@dataclass(frozen=True)
class Thresholds:
    """What status derivation compares checks against (the hub's from monitoring/conf.py)."""

    degraded_latency_ms: float
    down_after: int  # consecutive failures
    recent_checks: int  # a failure among these (but fewer than down_after in a row): degraded
    stale_factor: float  # last check older than this many intervals: unknown

    @classmethod
    def from_settings(cls) -> Thresholds:
        config = monitoring_conf()
        return cls(
            degraded_latency_ms=config.degraded_latency_ms,
            down_after=config.down_after,
            recent_checks=config.recent_checks,
            stale_factor=config.stale_factor,
        )

    @property
    def checks_needed(self) -> int:
        """How many of the newest checks `derive_status` looks at."""
        return max(self.down_after, self.recent_checks)


@dataclass(frozen=True)
class CheckSample:
    """What status derivation needs of one health check."""

    checked_at: datetime
    ok: bool
    latency_ms: float | None = None
    error: str = ""


@dataclass(frozen=True)
class Verdict:
    status: str
    reason: str


def derive_status(checks: Sequence[CheckSample], *, now: datetime, interval: float, thresholds: Thresholds) -> Verdict:
    """The status these checks (newest first) mean at `now`, and why.

    - unknown: never checked; or the last check is older than `stale_factor` intervals;
      or it has only failed so far, fewer than `down_after` times (never seen working);
    - down: the last `down_after` checks all failed;
    - degraded: a failure among the last `recent_checks`, or the last check slower than the threshold;
    - up: otherwise.
    """
    if not checks:
        return Verdict(Status.UNKNOWN, "never checked")
    last = checks[0]
    age = (now - last.checked_at).total_seconds()
    if age > thresholds.stale_factor * interval:
        return Verdict(Status.UNKNOWN, f"stale: last check {age:.0f} s ago (interval {interval:g} s)")
    failures = 0
    for check in checks:
        if check.ok:
            break
        failures += 1
    if failures >= thresholds.down_after:
        return Verdict(Status.DOWN, f"{failures} consecutive failed checks: {last.error or 'no reason given'}")
    recent = checks[: thresholds.recent_checks]
    failed_recently = sum(1 for check in recent if not check.ok)
    if failures == len(checks):
        return Verdict(Status.UNKNOWN, f"{failures} failed check(s), never reached: {last.error or 'no reason'}")
    if failed_recently:
        reason = f"{failed_recently} of the last {len(recent)} checks failed"
        if not last.ok:
            reason += f": {last.error or 'no reason given'}"
        return Verdict(Status.DEGRADED, reason)
    if last.latency_ms is not None and last.latency_ms > thresholds.degraded_latency_ms:
        return Verdict(
            Status.DEGRADED, f"slow: {last.latency_ms:.0f} ms (threshold {thresholds.degraded_latency_ms:g} ms)"
        )
    latency = f"{last.latency_ms:.0f} ms" if last.latency_ms is not None else "ok"
    return Verdict(Status.UP, f"check ok ({latency})")


def recent_checks(server_id: int, limit: int) -> list[CheckSample]:
    rows = HealthCheck.objects.filter(server_id=server_id).order_by("-checked_at")[:limit]
    return [CheckSample(row.checked_at, row.ok, row.latency_ms, row.error) for row in rows]


# --- the write --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    server_id: int
    slug: str
    old: str
    new: str
    reason: str
    changed_at: datetime

    def as_event(self) -> dict[str, Any]:
        return {
            "type": "status.changed",
            "server_id": self.server_id,
            "slug": self.slug,
            "old": self.old,
            "new": self.new,
            "reason": self.reason,
            "changed_at": self.changed_at.isoformat(),
        }


def apply_status(server_id: int, *, now: datetime | None = None, thresholds: Thresholds | None = None) -> Change | None:
    """Derive the server's status from its checks and record a change, at most once (compare-and-set).

    Returns the change this call recorded, or None (no change, or another process recorded it first).
    After the commit: gateways reload (registry version), the status cache is refreshed, a
    `status.changed` event goes to the Channels group "status", and a server that became reachable
    again gets its tools re-discovered.
    """
    thresholds = thresholds or Thresholds.from_settings()
    now = now or timezone.now()
    server = McpServer.objects.filter(pk=server_id).only("id", "slug", "status", "health_check_interval").first()
    if server is None:
        return None
    verdict = derive_status(
        recent_checks(server_id, thresholds.checks_needed),
        now=now,
        interval=server.health_check_interval,
        thresholds=thresholds,
    )
    if verdict.status == server.status:
        return None
    with transaction.atomic():
        updated = McpServer.objects.filter(pk=server_id, status=server.status).update(
            status=verdict.status, status_changed_at=now
        )
        if updated != 1:
            return None  # someone else changed it since we read it: theirs is the recorded change
        StatusChange.objects.create(
            server_id=server_id, changed_at=now, old=server.status, new=verdict.status, reason=verdict.reason
        )
        change = Change(server_id, server.slug, server.status, verdict.status, verdict.reason, now)
        transaction.on_commit(lambda: after_change(change))
    logger.info("server %s: %s -> %s (%s)", server.slug, change.old, change.new, change.reason)
    return change


def after_change(change: Change) -> None:
    """Side effects of a recorded change; each is best effort (a cache or channel error never fails a check)."""
    from monitoring.services import refresh_status_cache
    from servers.discovery import bump_registry_version
    from servers.services import schedule_discovery

    steps: list[tuple[str, Callable[[], object]]] = [
        ("registry version bump", bump_registry_version),
        ("status cache refresh", refresh_status_cache),
        ("status event", lambda: publish_event(change.as_event())),
    ]
    if change.new in REACHABLE and change.old not in REACHABLE:
        # Reachable again (or for the first time): its tools may have changed while it was away.
        steps.append(("tool re-discovery", lambda: schedule_discovery([change.server_id])))
    for what, step in steps:
        try:
            step()
        except Exception:
            logger.warning("server %s: %s after a status change failed", change.slug, what, exc_info=True)


def publish_event(event: dict[str, Any]) -> None:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(STATUS_GROUP, event)
