"""Query parameters of every REST endpoint: known names only, values validated, 400 with the reason.

It lives in ``logs``, the app every other one may import, so that servers, monitoring and logs
endpoints share it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

# DRF's format override (``?format=json``): allowed on every endpoint, checked by DRF itself.
ALWAYS_ALLOWED = frozenset({"format"})


def query_params(
    request: Request, serializer_class: type[serializers.Serializer] | None = None, *, also: Collection[str] = ()
) -> dict[str, Any]:
    """The request's query parameters validated by ``serializer_class`` (none without one).

    Unknown names answer 400 naming them; bad values, empty ones included, answer 400 keyed by the
    parameter (DRF's fields also refuse NUL characters). ``also``: names read elsewhere, e.g. pagination.
    """
    known = set(serializer_class().fields) if serializer_class is not None else set()
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
