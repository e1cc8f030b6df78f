"""Reading the request log: every query is bounded by a time window, so it touches only its partitions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from logs.conf import logs_conf
from logs.models import RequestLog, RequestLogQuerySet


class WindowError(ValueError):
    """The requested since/until window is not allowed (reversed or too wide)."""


def default_window() -> timedelta:
    return timedelta(hours=logs_conf().api_default_window_hours)


def max_window() -> timedelta:
    return timedelta(days=logs_conf().api_max_window_days)


def resolve_window(
    since: datetime | None, until: datetime | None, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """The ``[since, until)`` to query: defaults to the last 24 hours (``until`` now, ``since`` one
    default window before ``until``); rejects a reversed window or one wider than the maximum."""
    if until is None:
        until = now or timezone.now()
    if since is None:
        since = until - default_window()
    if since >= until:
        raise WindowError("since must be earlier than until")
    if until - since > max_window():
        raise WindowError(f"the window since..until may span at most {max_window().days} days")
    return since, until


@dataclass(frozen=True)
class LogFilter:
    """The filters of a log query; None means no filter."""

    since: datetime | None = None
    until: datetime | None = None
    server: str | None = None  # slug
    server_id: int | None = None
    tool: str | None = None
    outcome: str | None = None

    def queryset(self, now: datetime | None = None) -> RequestLogQuerySet:
        """Newest-first rows in the window matching the filters (raises WindowError)."""
        since, until = resolve_window(self.since, self.until, now)
        rows = RequestLog.objects.window(since, until)
        if self.server is not None:
            rows = rows.filter(server_slug=self.server)
        if self.server_id is not None:
            rows = rows.filter(server_id=self.server_id)
        if self.tool is not None:
            rows = rows.filter(tool=self.tool)
        if self.outcome is not None:
            rows = rows.filter(outcome=self.outcome)
        return rows.newest_first()
