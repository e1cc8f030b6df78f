"""Health checks, status changes and per-minute metric buckets."""

from __future__ import annotations

from django.db import models

from servers.models import McpServer, Status

REACHABLE = frozenset({Status.UP, Status.DEGRADED})  # statuses in which a server answers calls


class HealthCheck(models.Model):
    """One probe of one server (written by the health-check task)."""

    server = models.ForeignKey(McpServer, on_delete=models.CASCADE, related_name="health_checks")
    checked_at = models.DateTimeField(db_index=True)
    ok = models.BooleanField()
    latency_ms = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    era = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["-checked_at"]
        indexes = [models.Index(fields=["server", "-checked_at"], name="healthcheck_server_time")]

    def __str__(self) -> str:
        return f"{self.server_id} {'ok' if self.ok else 'failed'} at {self.checked_at:%Y-%m-%d %H:%M:%S}"


class StatusChange(models.Model):
    """A server's status moved from `old` to `new` (recorded once, by compare-and-set)."""

    server = models.ForeignKey(McpServer, on_delete=models.CASCADE, related_name="status_changes")
    changed_at = models.DateTimeField(db_index=True)
    old = models.CharField(max_length=10, choices=Status.choices)
    new = models.CharField(max_length=10, choices=Status.choices)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-changed_at"]

    def __str__(self) -> str:
        return f"{self.server_id}: {self.old} -> {self.new}"


class MetricBucket(models.Model):
    """Calls of one tool of one server in one minute (or hour), rolled up from the request log.

    One count column per request-log outcome (``logs.outcomes.Outcome``, named by its value).
    """

    class Resolution(models.TextChoices):
        MINUTE = "minute"
        HOUR = "hour"

    server_id = models.BigIntegerField()  # no foreign key: rows outlive deleted servers, like the log
    server_slug = models.CharField(max_length=100)
    tool = models.CharField(max_length=255)
    resolution = models.CharField(max_length=6, choices=Resolution.choices, default=Resolution.MINUTE)
    bucket = models.DateTimeField(help_text="Start of the minute or hour.")
    count = models.PositiveIntegerField(default=0)
    ok = models.PositiveIntegerField(default=0)
    tool_error = models.PositiveIntegerField(default=0)
    protocol_error = models.PositiveIntegerField(default=0)
    timeout = models.PositiveIntegerField(default=0)
    overloaded = models.PositiveIntegerField(default=0)
    connection_lost = models.PositiveIntegerField(default=0)
    upstream_down = models.PositiveIntegerField(default=0)
    denied = models.PositiveIntegerField(default=0)
    latency_avg = models.FloatField(default=0)
    latency_p50 = models.FloatField(default=0)
    latency_p95 = models.FloatField(default=0)
    latency_p99 = models.FloatField(default=0)
    latency_max = models.FloatField(default=0)
    request_bytes = models.BigIntegerField(default=0)
    response_bytes = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-bucket"]
        constraints = [
            models.UniqueConstraint(fields=["resolution", "bucket", "server_id", "tool"], name="unique_metric_bucket")
        ]
        indexes = [models.Index(fields=["server_id", "resolution", "bucket"], name="metric_server_time")]

    def __str__(self) -> str:
        return f"{self.server_slug}/{self.tool} {self.resolution} {self.bucket:%Y-%m-%d %H:%M}"
