"""Hub-wide middleware: a view that finds the database unavailable answers 503 with Retry-After, not 500."""

from __future__ import annotations

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin

from servers import outages

# Seconds a client is asked to wait: a database restart or failover takes about this long.
RETRY_AFTER_SECONDS = 5


class DatabaseUnavailableMiddleware(MiddlewareMixin):
    """Turn a lost or refused database connection in any view (API, admin, dashboard) into a 503."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        outages.database.failed(f"{request.method} {request.path}", exception)  # one line per outage
        response = JsonResponse({"detail": "The database is unavailable; retry later."}, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
