"""``GET /api/metrics/?server=&tool=&window=``: call counts, error rate and latency percentiles over time.

``1h`` reads minute buckets (60 points), ``24h`` and ``7d`` hour buckets (24 and 168 points);
empty buckets are included with a count of 0.
"""

from __future__ import annotations

import dataclasses

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from monitoring.metrics import WINDOWS, series
from servers.api.base import APIView
from servers.models import McpServer


class MetricsQuerySerializer(serializers.Serializer):
    window = serializers.ChoiceField(choices=list(WINDOWS), default="1h", help_text="1h (minutes), 24h or 7d (hours).")
    server = serializers.CharField(required=False, max_length=100, help_text="Server slug; default: every server.")
    tool = serializers.CharField(required=False, max_length=255, help_text="Tool name; default: every tool.")


class PointSerializer(serializers.Serializer):
    bucket = serializers.DateTimeField(help_text="Start of the minute or hour.")
    count = serializers.IntegerField()
    errors = serializers.IntegerField(help_text="Calls whose outcome is not ok.")
    error_rate = serializers.FloatField(allow_null=True, help_text="errors / count; null without calls.")
    latency_avg = serializers.FloatField(allow_null=True, help_text="Milliseconds.")
    p50 = serializers.FloatField(allow_null=True, help_text="Milliseconds.")
    p95 = serializers.FloatField(allow_null=True, help_text="Milliseconds.")
    p99 = serializers.FloatField(allow_null=True, help_text="Milliseconds.")
    latency_max = serializers.FloatField(allow_null=True, help_text="Milliseconds.")


class SeriesSerializer(serializers.Serializer):
    server = serializers.CharField(allow_null=True)
    tool = serializers.CharField(allow_null=True)
    window = serializers.CharField()
    resolution = serializers.CharField(help_text="minute or hour")
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    exact_percentiles = serializers.BooleanField(
        help_text="False when a point merges several tools or servers: its percentiles are then the "
        "count-weighted mean of theirs, an approximation."
    )
    points = PointSerializer(many=True)


class MetricsView(APIView):
    query_serializer = MetricsQuerySerializer

    @extend_schema(responses=SeriesSerializer)
    def get(self, request: Request) -> Response:
        params = self.query
        server_ids = self.visible_server_ids()
        if slug := params.get("server"):
            server = self.restrict(McpServer.objects.filter(slug=slug)).first()
            if server is None:  # also when this token may not see it: no difference to tell
                raise ValidationError({"server": [f"Unknown server {slug!r}."]})
            server_ids = frozenset({server.pk})
        result = series(params["window"], server_ids=server_ids, tool=params.get("tool"))
        data = dataclasses.asdict(result) | {"server": params.get("server"), "tool": params.get("tool")}
        return Response(SeriesSerializer(data).data)
