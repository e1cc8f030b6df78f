"""Hub-level views: liveness."""

from django.http import HttpRequest, JsonResponse
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
