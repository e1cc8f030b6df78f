"""Read-only admin views of health checks, status changes and metric buckets (written by tasks only)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from monitoring.models import HealthCheck, MetricBucket, StatusChange


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(HealthCheck)
class HealthCheckAdmin(ReadOnlyAdmin):
    list_display = ("checked_at", "server", "ok", "latency_ms", "era", "error")
    list_filter = ("ok", "server")
    list_select_related = ("server",)
    date_hierarchy = "checked_at"
    show_full_result_count = False  # the table is large: no COUNT(*) of all rows


@admin.register(StatusChange)
class StatusChangeAdmin(ReadOnlyAdmin):
    list_display = ("changed_at", "server", "old", "new", "reason")
    list_filter = ("new", "server")
    list_select_related = ("server",)
    date_hierarchy = "changed_at"


@admin.register(MetricBucket)
class MetricBucketAdmin(ReadOnlyAdmin):
    list_display = ("bucket", "resolution", "server_slug", "tool", "count", "ok", "latency_p50", "latency_p95")
    list_filter = ("resolution", "server_slug")
    search_fields = ("tool",)
    date_hierarchy = "bucket"
    show_full_result_count = False
