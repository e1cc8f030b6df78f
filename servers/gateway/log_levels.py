"""`logging/setLevel` from downstream clients: remembered per handshake-era session, forwarded to the upstreams.

Upstream connections are shared by every downstream client, so an upstream is set to
the most verbose level any client asked for; each client then gets only the messages
at or above its own level (`Requester.wants_log`). A 2026-07-28 client asks per
request (`_meta` `io.modelcontextprotocol/logLevel`) and has no session to remember.
"""

from __future__ import annotations

import mcp_types as types
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from servers.gateway.scope import Ctx
from servers.upstream.requester import LOG_LEVELS

MAX_REMEMBERED = 10_000


def session_id(ctx: Ctx) -> str | None:
    return ctx.request.headers.get("mcp-session-id") if ctx.request is not None else None


class LogLevels:
    """The level each handshake-era downstream session set (bounded: the oldest are forgotten)."""

    def __init__(self) -> None:
        self._levels: dict[str, types.LoggingLevel] = {}

    def set(self, ctx: Ctx, level: types.LoggingLevel) -> None:
        key = session_id(ctx)
        if key is None:
            return
        self._levels.pop(key, None)
        if len(self._levels) >= MAX_REMEMBERED:
            self._levels.pop(next(iter(self._levels)))
        self._levels[key] = level

    def of(self, ctx: Ctx) -> types.LoggingLevel | None:
        """The level this request's client wants (None: every level)."""
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            requested = (ctx.meta or {}).get(types.LOG_LEVEL_META_KEY)
            for level in LOG_LEVELS:
                if level == requested:
                    return level
            return "emergency"  # no opt-in: the SDK sends this request none anyway
        key = session_id(ctx)
        return self._levels.get(key) if key is not None else None

    def upstream_level(self) -> types.LoggingLevel:
        """The most verbose level any client set: what the shared upstream connections are set to."""
        return min(self._levels.values(), key=LOG_LEVELS.index, default="debug")
