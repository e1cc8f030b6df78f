"""``GET /api/logs/``: the request log, newest first, cursor-paginated, always within a time window."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from logs.api.serializers import RequestLogFilterSerializer, RequestLogSerializer
from logs.models import RequestLog

# Parameters the view reads besides the filters (pagination, DRF's format suffix).
OTHER_PARAMETERS = {"cursor", "page_size", "format"}


class RequestLogPagination(CursorPagination):
    """Cursor pagination (no COUNT, stable under inserts) on (created_at, id), newest first."""

    ordering = ("-created_at", "-id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class RequestLogList(generics.ListAPIView):
    """The request log within ``since``..``until`` (default: the last 24 hours), newest first."""

    serializer_class = RequestLogSerializer
    pagination_class = RequestLogPagination
    permission_classes = [permissions.IsAdminUser]  # staff login; bearer tokens come with the token issue

    @extend_schema(parameters=[RequestLogFilterSerializer])
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[RequestLog]:
        params = self.request.query_params
        unknown = sorted(set(params) - set(RequestLogFilterSerializer().fields) - OTHER_PARAMETERS)
        if unknown:
            raise ValidationError({"detail": f"unknown query parameter(s): {', '.join(unknown)}"})
        filters = RequestLogFilterSerializer(data=params)
        filters.is_valid(raise_exception=True)
        return filters.to_filter().queryset()
