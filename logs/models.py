"""The request log: one row per call the hub proxies, in a table partitioned by month.

The table itself is created by SQL in migration 0001 (``PARTITION BY RANGE
(created_at)``, ``PRIMARY KEY (id, created_at)``, a DEFAULT partition); Django's
model state keeps a single-column ``id`` primary key so that the ORM and the admin
work. ``logs`` knows nothing of the other apps: it keeps the server's id and slug
and the token's id and name, with no foreign key (deleting a server must not scan
every partition; a row keeps naming a token that was since deleted).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db import models
from django.utils import timezone

from logs.outcomes import Outcome

TABLE = "logs_requestlog"


class ProtocolEra(models.TextChoices):
    STATELESS = "stateless", "2026-07-28 (stateless)"
    HANDSHAKE = "handshake", "handshake (2025-11-25 and older)"


class RequestLogQuerySet(models.QuerySet["RequestLog"]):
    def window(self, since: datetime, until: datetime) -> RequestLogQuerySet:
        """Rows with ``since <= created_at < until``: constant bounds, so PostgreSQL prunes partitions."""
        return self.filter(created_at__gte=since, created_at__lt=until)

    def recent(self, hours: float = 24, now: datetime | None = None) -> RequestLogQuerySet:
        """The last ``hours`` hours up to ``now``."""
        now = now or timezone.now()
        return self.window(now - timedelta(hours=hours), now)

    def newest_first(self) -> RequestLogQuerySet:
        return self.order_by("-created_at", "-id")


class RequestLog(models.Model):
    """One proxied call (or a denied one). Written in batches by :mod:`logs.writer`."""

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(default=timezone.now, help_text="When the call started; the partition key.")
    # Unique together with created_at (a unique index on a partitioned table must include the partition key):
    # the writer's idempotency key, with the record's created_at, which never changes between retries.
    request_id = models.UUIDField(default=uuid.uuid4, editable=False)
    server_id = models.BigIntegerField(null=True, blank=True, help_text="servers.Server id; no foreign key.")
    server_slug = models.CharField(max_length=100, blank=True, default="")
    tool = models.CharField(max_length=255, blank=True, default="", help_text="Tool name, else the JSON-RPC method.")
    token_id = models.BigIntegerField(null=True, blank=True, help_text="servers.AccessToken id; no foreign key.")
    token_name = models.CharField(max_length=100, blank=True, default="", help_text="The token's name at the call.")
    session_id = models.CharField(max_length=128, blank=True, default="")
    protocol_era = models.CharField(max_length=16, choices=ProtocolEra.choices, blank=True, default="")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    latency_ms = models.FloatField(default=0.0)
    request_bytes = models.IntegerField(default=0)
    response_bytes = models.IntegerField(default=0)
    error_code = models.IntegerField(null=True, blank=True, help_text="JSON-RPC error code, if any.")
    error = models.TextField(blank=True, default="")

    objects = RequestLogQuerySet.as_manager()

    class Meta:
        db_table = TABLE
        ordering = ("-created_at", "-id")
        get_latest_by = "created_at"
        indexes = [
            models.Index(fields=["created_at"], name="logs_rl_created_at_idx"),
            models.Index(fields=["server_id", "created_at"], name="logs_rl_server_created_idx"),
            models.Index(fields=["outcome", "created_at"], name="logs_rl_outcome_created_idx"),
            models.Index(fields=["tool", "created_at"], name="logs_rl_tool_created_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["request_id", "created_at"], name="logs_rl_request_id_created_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.server_slug}/{self.tool} {self.outcome}"
