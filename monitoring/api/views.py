"""``GET /api/status/`` and ``GET /api/health/``: thin views over the cached status overview."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from monitoring.api.serializers import HealthSerializer, StatusFilterSerializer, StatusSerializer
from monitoring.services import health_summary, status_json, status_overview
from servers.api.authentication import StaffOrToken
from servers.api.base import APIView


class JSONOnly(BaseContentNegotiation):
    """No negotiation: these endpoints answer JSON, whatever the Accept header (DRF's own recipe)."""

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], renderers[0].media_type


class OverviewView(APIView):
    # A view over the cached status overview: JSON only, for staff and any token. (No docstring: it
    # would become the OpenAPI description of its subclasses.)

    permission_classes = [StaffOrToken]
    # Polled by scripts, probes and dashboards: JSON only. Negotiating a renderer cost about as much as the Redis hit.
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONOnly

    def visible_overview(self) -> dict[str, Any]:
        """The overview, limited to the servers the request's token may use (staff see all)."""
        overview = status_overview()
        allowed = self.visible_server_ids()
        if allowed is None:
            return overview
        return {**overview, "servers": [row for row in overview["servers"] if row["id"] in allowed]}


class StatusView(OverviewView):
    """Every enabled server: status, last health check, calls per minute, error rate and p95 of recent calls."""

    query_serializer = StatusFilterSerializer

    @extend_schema(responses=StatusSerializer)
    def get(self, request: Request) -> Response:
        if not request.query_params and self.visible_server_ids() is None:
            # Everything, for staff or an unrestricted token: the stored JSON as is, nothing to render.
            return HttpResponse(status_json(), content_type="application/json")
        overview = self.visible_overview()
        if self.query:
            rows = [row for row in overview["servers"] if all(row[key] == value for key, value in self.query.items())]
            overview = {**overview, "servers": rows}
        return Response(overview)


class HealthView(OverviewView):
    """How many enabled servers are healthy (up or degraded): 200, or 503 when servers exist and none is."""

    @extend_schema(
        responses={200: HealthSerializer, 503: OpenApiResponse(HealthSerializer, description="No server is healthy.")}
    )
    def get(self, request: Request) -> Response:
        summary = health_summary(self.visible_overview())
        unhealthy = summary["total"] > 0 and summary["healthy"] == 0
        return Response(summary, status=503 if unhealthy else 200)
