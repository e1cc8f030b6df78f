"""ASGI entry point: /mcp to the MCP gateway, other HTTP to Django, /ws/status/ to the dashboard, lifespan."""

import os

from django.core.asgi import get_asgi_application

from mcphub import embedded

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcphub.settings")
# A web process started by hand on embedded servers (the launcher starts them and sets the URLs first).
embedded.start_unconfigured()

# Initialise Django (apps, settings) before anything imports models.
django_asgi_app = get_asgi_application()

from typing import Any  # noqa: E402

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from monitoring.consumers import StatusConsumer  # noqa: E402
from servers.gateway.app import lifespan, mcp_app, runner  # noqa: E402


async def http_router(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """/mcp and /mcp/<slug>/ bypass Django (no middleware on the call path); the rest is Django."""
    path = scope["path"]
    if path == "/mcp" or path.startswith("/mcp/"):
        await runner.serve(mcp_app, scope, receive, send)
    else:
        await django_asgi_app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_router,
        "lifespan": lifespan,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/status/", StatusConsumer.as_asgi())]))
        ),
    }
)
