"""``GET /api/logs/``: the request log, newest first, cursor-paginated, always within a time window."""

from __future__ import annotations

import re
from typing import Any

from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime
from rest_framework import permissions, serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.views import APIView

from logs.api.base import ListAPIView, query_value
from logs.api.serializers import RequestLogFilterSerializer, RequestLogSerializer
from logs.models import RequestLog
from logs.services import LogFilter

BASE64 = re.compile(r"[A-Za-z0-9+/=]*")


class RequestLogPagination(CursorPagination):
    """Cursor pagination (no COUNT, stable under inserts) on (created_at, id), newest first.

    A bad ``page_size`` or ``cursor`` answers 400 naming it (DRF would fall back to the default
    size, or answer 404 for a cursor).
    """

    ordering = ("-created_at", "-id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request: Request) -> int:
        field = serializers.IntegerField(min_value=1, max_value=self.max_page_size)
        size = query_value(request, self.page_size_query_param, field)
        return self.page_size if size is None else size

    def decode_cursor(self, request: Request) -> Cursor | None:
        invalid = ValidationError({self.cursor_query_param: [self.invalid_cursor_message]})
        # DRF's base64 decoding skips characters outside the alphabet (a NUL, say) instead of refusing them.
        if not BASE64.fullmatch(request.query_params.get(self.cursor_query_param, "")):
            raise invalid
        try:
            cursor = super().decode_cursor(request)
        except NotFound as error:
            raise invalid from error
        # The position is a created_at the filter compares with: a forged one must not reach the database.
        if cursor is not None and cursor.position is not None:
            position = str(cursor.position)  # the text of the cursor (typed int in the stubs, a str at run time)
            try:
                valid = parse_datetime(position) is not None and "\x00" not in position
            except ValueError:
                valid = False
            if not valid:
                raise invalid
        return cursor

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return parameters


class RequestLogList(ListAPIView):
    """The request log within ``since``..``until`` (default: the last 24 hours), newest first."""

    serializer_class = RequestLogSerializer
    pagination_class = RequestLogPagination
    permission_classes = [permissions.IsAdminUser]  # staff login; bearer tokens come with the token issue
    query_serializer = RequestLogFilterSerializer

    def get_queryset(self) -> QuerySet[RequestLog]:
        return LogFilter(**self.query).queryset()
