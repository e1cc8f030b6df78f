"""Query parameters of the status API (validated: 400 with the reason)."""

from __future__ import annotations

from rest_framework import serializers

from servers.models import Status, slug_validator


class StatusFilterSerializer(serializers.Serializer):
    """Query parameters of ``GET /api/status/``; both optional."""

    server = serializers.CharField(
        required=False, max_length=30, validators=[slug_validator], source="slug", help_text="Only this server (slug)."
    )
    status = serializers.ChoiceField(required=False, choices=Status.choices, help_text="Only servers in this status.")


class ServerStatusSerializer(serializers.Serializer):
    """One server in ``GET /api/status/`` (documentation of the cached rows; they are served as stored)."""

    id = serializers.IntegerField()
    slug = serializers.CharField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=Status.choices)
    status_changed_at = serializers.DateTimeField(allow_null=True)
    latency_ms = serializers.FloatField(allow_null=True, help_text="Round trip of the last health check.")
    last_checked_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField(help_text="Error of the last health check, if it failed.")
    calls_per_minute = serializers.FloatField(help_text="Over the last `window_minutes`.")
    error_rate = serializers.FloatField(allow_null=True, help_text="Share of calls not ok; null without calls.")
    p95_ms = serializers.FloatField(allow_null=True, help_text="Approximate p95 latency of calls; null without calls.")


class StatusSerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    window_minutes = serializers.IntegerField()
    servers = ServerStatusSerializer(many=True)


class HealthSerializer(serializers.Serializer):
    healthy = serializers.IntegerField(help_text="Enabled servers up or degraded.")
    total = serializers.IntegerField(help_text="Enabled servers.")
    counts = serializers.DictField(child=serializers.IntegerField(), help_text="Enabled servers per status.")
    generated_at = serializers.DateTimeField()
