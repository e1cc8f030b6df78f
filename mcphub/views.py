"""Hub-level views: liveness, the 404 answer."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.http import require_GET

from mcphub.health import check_all


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Database and Redis reachability with latency; 503 naming whichever does not answer.

    Open to anyone (load balancers, orchestrators): it reveals nothing beyond this.
    """
    checks = check_all()
    down = [name for name, result in checks.items() if not result.ok]
    body = {
        "status": "ok" if not down else "unavailable",
        "down": down,
        **{name: result.as_dict() for name, result in checks.items()},
    }
    return JsonResponse(body, status=503 if down else 200)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404 as JSON under /api/ (as the API's own 404s are, and its schema says); Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
