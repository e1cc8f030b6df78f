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


class InstanceSerializer(serializers.Serializer):
    """One running instance of a server in one web process (see ``servers.gateway.instances``)."""

    process = serializers.CharField(help_text="The web process running it (host:pid).")
    index = serializers.IntegerField()
    label = serializers.CharField(help_text="`#N` for a stdio replica, the URL for an HTTP one.")
    state = serializers.ChoiceField(choices=["connecting", "connected", "backoff", "stopped"])
    healthy = serializers.BooleanField(help_text="In rotation (out after a failure until a probe succeeds).")
    in_flight = serializers.IntegerField(help_text="Calls in flight on it now.")
    latency_ms = serializers.FloatField(help_text="Moving average of its call latency; 0 before its first call.")
    calls = serializers.IntegerField()
    errors = serializers.IntegerField()
    pid = serializers.IntegerField(allow_null=True, help_text="The stdio process; null for HTTP.")
    restarts = serializers.IntegerField()


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
    instances = InstanceSerializer(many=True, help_text="Its running instances, in every web process.")


class StatusSerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    window_minutes = serializers.IntegerField()
    servers = ServerStatusSerializer(many=True)


class HealthSerializer(serializers.Serializer):
    healthy = serializers.IntegerField(help_text="Enabled servers up or degraded.")
    total = serializers.IntegerField(help_text="Enabled servers.")
    counts = serializers.DictField(child=serializers.IntegerField(), help_text="Enabled servers per status.")
    generated_at = serializers.DateTimeField()
