"""The generic base of every REST endpoint: query parameters declared on the view, validated once, documented.

A view names the serializer of its query parameters (``query_serializer``, or
``get_query_serializer_class()`` when it depends on the action); before the handler runs, unknown
names answer 400 naming them and bad values 400 keyed by the parameter; the handler reads the
validated values from ``self.query``; the OpenAPI schema lists the same serializer's fields.

The layers are ``mcphub`` -> ``monitoring`` -> ``servers`` -> ``logs``, and ``logs`` imports no
other app: this generic part lives here, in the bottom app, so that every app's ``api/`` can build
on it. What knows of tokens (``token_of``, ``visible_server_ids``, the staff-or-token permissions and
the registry's base views) sits on top of it in :mod:`servers.api.base`. Authentication is declared
once for every view, ``logs``' included, in the ``REST_FRAMEWORK`` settings: the project wires the
registry's bearer tokens into DRF, so no app below ``servers`` has to import them.
"""

from __future__ import annotations

from collections.abc import Collection
from functools import cache, cached_property
from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework import generics, serializers, views
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

# DRF's format override (``?format=json``): allowed on every endpoint, checked by DRF itself.
ALWAYS_ALLOWED = frozenset({"format"})

QuerySerializer = type[serializers.Serializer]


@cache
def _names(serializer_class: QuerySerializer) -> frozenset[str]:
    return frozenset(serializer_class().fields)


def validate_query(
    request: Request, serializer_class: QuerySerializer | None = None, *, also: Collection[str] = ()
) -> dict[str, Any]:
    """The request's query parameters validated by ``serializer_class`` (none without one).

    Unknown names answer 400 naming them; bad values, empty ones included, answer 400 keyed by the
    parameter (DRF's fields also refuse NUL characters). ``also``: names read elsewhere, e.g. pagination.
    """
    known = _names(serializer_class) if serializer_class is not None else frozenset()
    unknown = sorted(set(request.query_params) - known - set(also) - ALWAYS_ALLOWED)
    if unknown:
        raise ValidationError({"detail": f"unknown query parameter(s): {', '.join(unknown)}"})
    if serializer_class is None:
        return {}
    # A plain dict, not the QueryDict: DRF reads an empty form value as "not sent", but ``?window=`` is a bad value.
    query = serializer_class(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)


def query_value(request: Request, name: str, field: serializers.Field) -> Any:
    """One query parameter parsed by ``field`` (None when absent); a bad value answers 400 keyed by ``name``."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return field.run_validation(raw)
    except ValidationError as error:
        raise ValidationError({name: error.detail}) from error


class QuerySchema(AutoSchema):
    """The OpenAPI schema of a view with declared query parameters: the serializer's fields, one parameter each."""

    def get_override_parameters(self) -> list[Any]:
        view = self.view
        serializer_class = view.get_query_serializer_class() if isinstance(view, APIView) else None
        return [*super().get_override_parameters(), *([serializer_class] if serializer_class is not None else [])]


class APIView(views.APIView):
    # Validates the query parameters of every request that reaches a handler (a 405 stays a 405), after
    # authentication and permissions: a refused request learns nothing from its parameters.
    # (No docstring on the bases: drf-spectacular would show it as the description of every view without one.)

    query_serializer: QuerySerializer | None = None  # None: no parameter taken, any is refused
    schema = QuerySchema()

    def get_query_serializer_class(self) -> QuerySerializer | None:
        return self.query_serializer

    @cached_property
    def query(self) -> dict[str, Any]:
        """The validated query parameters (with the serializer's defaults)."""
        paginator = getattr(self, "pagination_class", None)
        also = _pagination_params(paginator) if paginator is not None else frozenset()
        return validate_query(self.request, self.get_query_serializer_class(), also=also)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        method = (request.method or "").lower()
        # As DRF's dispatch finds the handler: a method without one is answered 405, whatever its parameters.
        has_handler = method in self.http_method_names and hasattr(self, method)
        # Without parameters nothing can be refused: the values (defaults) are made when first read, so
        # a handler that does not read them (the status endpoint's cached answer) pays nothing.
        if has_handler and request.query_params:
            self.query  # noqa: B018  (validated now, before the handler)


@cache
def _pagination_params(pagination_class: type) -> frozenset[str]:
    """A pagination's own parameters (``cursor``, ``page_size``...): it validates them itself."""
    names = (getattr(pagination_class, name) for name in dir(pagination_class) if name.endswith("_query_param"))
    return frozenset(name for name in names if name)


class ListAPIView(APIView, generics.ListAPIView):
    pass
