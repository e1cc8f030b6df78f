"""Read-only admin of the request log: windowed (last 24 hours by default), never a full COUNT(*)."""

from __future__ import annotations

import calendar
import json
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.functional import cached_property

from logs import partitions
from logs.models import RequestLog, RequestLogQuerySet

DEFAULT_WINDOW = timedelta(hours=24)
EXACT_COUNT_LIMIT = 10_000
RECENT_SAMPLE = 5_000


class BoundedCountPaginator(Paginator):
    """Counts at most EXACT_COUNT_LIMIT + 1 rows; above that, the planner's estimate (EXPLAIN).

    Django's paginator runs ``SELECT COUNT(*)`` over the whole filtered result, which on a
    table of hundreds of millions of rows takes minutes.
    """

    object_list: QuerySet[Any]  # the admin paginates querysets only

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        bounded = queryset.order_by()[: EXACT_COUNT_LIMIT + 1].count()  # COUNT over a LIMIT subquery
        if bounded <= EXACT_COUNT_LIMIT:
            return bounded
        return max(bounded, estimate_rows(queryset))


def estimate_rows(queryset: QuerySet[Any]) -> int:
    """The planner's row estimate for ``queryset`` (no scan)."""
    sql, params = queryset.order_by().query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class RecentValuesFilter(admin.SimpleListFilter):
    """Choices from the most recent rows only (a bounded read); any value works in the URL."""

    field = ""

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        since = timezone.now() - DEFAULT_WINDOW
        recent = RequestLog.objects.filter(created_at__gte=since).order_by("-created_at")[:RECENT_SAMPLE]
        values = sorted({v for v in recent.values_list(self.field, flat=True) if v})
        current = self.value()
        if current and current not in values:
            values.append(current)
        return [(value, value) for value in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet[RequestLog]) -> QuerySet[RequestLog]:
        if self.value():
            return queryset.filter(**{self.field: self.value()})
        return queryset


class ServerFilter(RecentValuesFilter):
    title = "server"
    parameter_name = "server"
    field = "server_slug"


class ToolFilter(RecentValuesFilter):
    title = "tool"
    parameter_name = "tool"
    field = "tool"


class TokenFilter(RecentValuesFilter):
    title = "token"
    parameter_name = "token"
    field = "token_name"


@admin.register(RequestLog)
class RequestLogAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "server_slug",
        "tool",
        "token_name",
        "outcome",
        "latency_ms",
        "error_code",
        "request_id",
    )
    list_filter = ("outcome", ServerFilter, ToolFilter, TokenFilter)
    search_fields = ("tool", "server_slug", "token_name", "error", "=session_id")
    date_hierarchy = "created_at"
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts are COUNT(*)s
    paginator = BoundedCountPaginator
    list_per_page = 100
    list_max_show_all = 0  # no "show all"
    ordering = ("-created_at", "-id")
    change_list_template = "admin/logs/requestlog/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: RequestLog | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: RequestLog | None = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> RequestLogQuerySet:
        # ModelAdmin's stubs return a plain QuerySet; RequestLog's manager is RequestLogQuerySet.as_manager().
        rows = cast(RequestLogQuerySet, super().get_queryset(request))
        match = request.resolver_match
        if not _date_params(request) and match is not None and (match.url_name or "").endswith("_changelist"):
            # No date picked: the last 24 hours, so the list touches one or two partitions.
            rows = rows.recent(hours=DEFAULT_WINDOW.total_seconds() / 3600)
        return rows

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = {
            "windowed": not _date_params(request),
            "hierarchy": date_choices(request),
            "partitions_url": reverse("admin:logs_requestlog_partitions"),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.partitions_view)
        return [path("partitions/", view, name="logs_requestlog_partitions"), *super().get_urls()]

    def partitions_view(self, request: HttpRequest) -> HttpResponse:
        """The partitions with their bounds, sizes and row estimates (catalog reads only)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        rows = partitions.list_partitions()
        context = {
            **self.admin_site.each_context(request),
            "title": "Request-log partitions",
            "opts": self.model._meta,
            "partitions": rows,
            "total_rows": sum(p.estimated_rows for p in rows),
            "total_bytes": sum(p.size_bytes for p in rows),
        }
        return TemplateResponse(request, "admin/logs/requestlog/partitions.html", context)


def _date_params(request: HttpRequest) -> bool:
    return any(key.startswith("created_at__") for key in request.GET)


def date_choices(request: HttpRequest) -> dict[str, Any]:
    """Drill-down links (months from the partition list, days from the calendar) without any
    query on the rows: Django's date hierarchy runs SELECT DISTINCT over the whole result."""
    year = request.GET.get("created_at__year")
    month = request.GET.get("created_at__month")
    day = request.GET.get("created_at__day")
    base = {k: v for k, v in request.GET.items() if not k.startswith("created_at__") and k != "p"}

    def link(**dates: int) -> str:
        return "?" + urlencode({**base, **{f"created_at__{k}": v for k, v in dates.items()}})

    try:
        if year and month:
            y, m = int(year), int(month)
            days = [{"title": f"{y}-{m:02d}-{d:02d}", "link": link(year=y, month=m, day=d)} for d in _days(y, m)]
            chosen = f"{y}-{m:02d}-{int(day):02d}" if day else f"{y}-{m:02d}"
            return {"back": {"title": "All months", "link": link()}, "current": chosen, "choices": days}
    except ValueError:
        pass
    months = [
        {"title": f"{p.lower:%Y-%m}", "link": link(year=p.lower.year, month=p.lower.month)}
        for p in partitions.list_partitions()
        if not p.is_default and p.lower is not None
    ]
    return {"back": None, "current": "last 24 hours", "choices": months}


def _days(year: int, month: int) -> range:
    today = datetime.now(tz=timezone.get_current_timezone()).date()
    last = calendar.monthrange(year, month)[1]
    if (year, month) == (today.year, today.month):
        last = today.day
    return range(1, last + 1)
