"""The base of the registry's and monitoring's API views: the query-parameter base plus who may see what.

Built on :mod:`logs.api.base` (query parameters declared on the view, validated once, documented),
which ``logs`` itself uses: ``logs`` may import no other app, so the generic part lives there and
what knows of tokens lives here. Authentication (bearer tokens, then the session) is declared once
for every view in the ``REST_FRAMEWORK`` settings; the permission is declared on each view, staff
or read-only token by default.
"""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import viewsets

from logs.api import base
from servers.api.authentication import StaffOrTokenReadOnly, visible_server_ids


class APIView(base.APIView):
    # Staff see every server; a token limited to some servers sees only those, as if the others did not exist.
    # (No docstring on the bases: drf-spectacular would show it as the description of every view without one.)

    permission_classes = [StaffOrTokenReadOnly]

    def visible_server_ids(self) -> frozenset[int] | None:
        """The servers this request may see: None for all (staff, unrestricted tokens)."""
        return visible_server_ids(self.request)

    def restrict(self, queryset: QuerySet, field: str = "pk") -> QuerySet:
        """``queryset`` limited to the visible servers; ``field`` holds the server's id."""
        server_ids = self.visible_server_ids()
        return queryset if server_ids is None else queryset.filter(**{f"{field}__in": server_ids})


class GenericViewSet(APIView, viewsets.GenericViewSet):
    pass


class ModelViewSet(APIView, viewsets.ModelViewSet):
    pass
