"""Who is asking and through which endpoint: the request scope the gateway app puts on each /mcp request."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from mcp.server import ServerRequestContext
from mcp.shared.exceptions import MCPError

from servers.tokens import TokenInfo

Ctx = ServerRequestContext[Any, Any]

# The endpoint slug of the request being handled (None: /mcp), for the SDK's `get_tool_input_schema`
# hook: the SDK calls it with the tool name only, and its other way to find a schema (its own
# tools/list handler, which does get the request) would list every visible tool on every call.
CURRENT_SLUG: ContextVar[str | None] = ContextVar("mcphub_endpoint_slug", default=None)


@dataclass(frozen=True)
class RequestScope:
    """Who is asking and through which endpoint; set on the ASGI scope by the gateway app."""

    token: TokenInfo
    slug: str | None  # /mcp/<slug>/, or None for the aggregated /mcp

    @classmethod
    def of(cls, ctx: Ctx) -> RequestScope:
        if ctx.request is None or "mcphub" not in ctx.request.scope:
            raise MCPError(types.INVALID_REQUEST, "request did not come through the hub's endpoint")
        scope: RequestScope = ctx.request.scope["mcphub"]
        return scope
