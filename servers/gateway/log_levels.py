"""The level each downstream client wants log messages at, and the `LogRoute` of its requests.

Upstream connections are shared by every downstream client, so a handshake-era upstream is set to
the most verbose level any client asked for (servers.upstream.log_routes); each client then gets only
the messages at or above its own level. A handshake-era client sets its level per session
(`logging/setLevel`, remembered here); a 2026-07-28 client asks per request (`_meta`
`io.modelcontextprotocol/logLevel`) and gets no log messages without it.
"""

from __future__ import annotations

import mcp_types as types
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from servers.gateway.scope import Ctx
from servers.upstream.log_routes import LOG_LEVELS, LogRoute, requested_level

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

    def route(self, ctx: Ctx, label: bool) -> LogRoute | None:
        """Where this request's log messages go: its own stream (SDK session), at the level its client wants;
        None for a 2026-07-28 request that does not opt in."""
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            level = requested_level(ctx.meta)
            if level is None:
                return None
        else:
            key = session_id(ctx)
            level = self._levels.get(key) if key is not None else None
        session, request_id = ctx.session, ctx.request_id

        async def emit(params: types.LoggingMessageNotificationParams) -> None:
            notification = types.LoggingMessageNotification(params=params)
            await session.send_notification(notification, related_request_id=request_id)

        return LogRoute(level, emit, label)

    def upstream_level(self) -> types.LoggingLevel | None:
        """The most verbose level any handshake-era session set (None: none did)."""
        return min(self._levels.values(), key=LOG_LEVELS.index, default=None)
