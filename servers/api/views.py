"""``/api/servers/`` (CRUD for staff, read for tokens) and ``/api/tools/`` (read; staff toggle ``enabled``).

Every write goes through :mod:`servers.services`, never ``serializer.save()``.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from logs.api.query import query_params
from servers import services
from servers.api.authentication import StaffOrTokenReadOnly, visible_server_ids
from servers.api.serializers import McpServerSerializer, ToolEnabledSerializer, ToolQuerySerializer, ToolSerializer
from servers.models import McpServer, Tool


def _visible(queryset: QuerySet, request: Request, field: str = "pk") -> QuerySet:
    server_ids = visible_server_ids(request)
    return queryset if server_ids is None else queryset.filter(**{f"{field}__in": server_ids})


class McpServerViewSet(viewsets.ModelViewSet):
    """Registered MCP servers, by slug."""

    serializer_class = McpServerSerializer
    permission_classes = [StaffOrTokenReadOnly]
    lookup_field = "slug"
    lookup_value_regex = "[a-z0-9-]+"

    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
        super().initial(request, *args, **kwargs)
        if self.action is not None:  # None: a method not allowed, answered 405 next
            query_params(request)  # none taken: any is refused

    def get_queryset(self) -> QuerySet[McpServer]:
        return _visible(McpServer.objects.order_by("name", "pk"), self.request)

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


@extend_schema_view(list=extend_schema(parameters=[ToolQuerySerializer]))
class ToolViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Tools discovered on the registered servers."""

    serializer_class = ToolSerializer
    permission_classes = [StaffOrTokenReadOnly]
    query: dict[str, str]

    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
        super().initial(request, *args, **kwargs)
        if self.action is not None:  # None: a method not allowed, answered 405 next
            self.query = query_params(request, ToolQuerySerializer if self.action == "list" else None)

    def get_queryset(self) -> QuerySet[Tool]:
        tools = _visible(Tool.objects.select_related("server").order_by("server__slug", "name"), self.request, "server")
        if self.action != "list":
            return tools
        slug = self.query.get("server")
        if slug is None:
            return tools
        # A server this token may not see is reported exactly like a missing one.
        if not _visible(McpServer.objects.filter(slug=slug), self.request).exists():
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
