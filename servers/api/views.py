"""``/api/servers/`` (CRUD for staff, read for tokens) and ``/api/tools/`` (read; staff toggle ``enabled``).

Every write goes through :mod:`servers.services`, never ``serializer.save()``.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from servers import services
from servers.api.base import GenericViewSet, ModelViewSet
from servers.api.serializers import McpServerSerializer, ToolEnabledSerializer, ToolQuerySerializer, ToolSerializer
from servers.models import McpServer, Tool


class McpServerViewSet(ModelViewSet):
    """Registered MCP servers, by slug."""

    serializer_class = McpServerSerializer
    lookup_field = "slug"
    lookup_value_regex = "[a-z0-9-]+"

    def get_queryset(self) -> QuerySet[McpServer]:
        return self.restrict(McpServer.objects.order_by("name", "pk"))

    def perform_create(self, serializer: McpServerSerializer) -> None:
        serializer.instance = self._save(McpServer(**serializer.validated_data), previous=None)

    def perform_update(self, serializer: McpServerSerializer) -> None:
        server = serializer.instance
        previous = McpServer.objects.get(pk=server.pk)
        for name, value in serializer.validated_data.items():
            setattr(server, name, value)
        serializer.instance = self._save(server, previous=previous)

    def perform_destroy(self, instance: McpServer) -> None:
        with transaction.atomic():
            services.delete_server(instance)

    @staticmethod
    def _save(server: McpServer, previous: McpServer | None) -> McpServer:
        try:
            with transaction.atomic():
                return services.save_server(server, previous=previous)
        except DjangoValidationError as error:  # the model's clean(): keyed by field
            raise ValidationError(serializers.as_serializer_error(error)) from error


class ToolViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, GenericViewSet):
    """Tools discovered on the registered servers."""

    serializer_class = ToolSerializer

    def get_query_serializer_class(self) -> type[ToolQuerySerializer] | None:
        return ToolQuerySerializer if self.action == "list" else None

    def get_queryset(self) -> QuerySet[Tool]:
        tools = self.restrict(Tool.objects.select_related("server").order_by("server__slug", "name"), "server")
        if self.action != "list":
            return tools
        slug = self.query.get("server")
        if slug is None:
            return tools
        # A server this token may not see is reported exactly like a missing one.
        if not self.restrict(McpServer.objects.filter(slug=slug)).exists():
            raise ValidationError({"server": [f"Unknown server {slug!r}."]})
        return tools.filter(server__slug=slug)

    @extend_schema(request=ToolEnabledSerializer, responses=ToolSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        tool = self.get_object()
        body = ToolEnabledSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        with transaction.atomic():
            services.set_tools_enabled({tool.pk: body.validated_data["enabled"]})
        tool.refresh_from_db()
        return Response(ToolSerializer(tool).data)
