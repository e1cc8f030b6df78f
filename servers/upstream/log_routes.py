"""Where an upstream's log messages (`notifications/message`) go: to the client whose request they belong to.

A downstream client says which levels it wants: a 2026-07-28 client per request (`_meta`
`io.modelcontextprotocol/logLevel`; absent means none), a handshake-era client per session
(`logging/setLevel`; never set means every level). Around each upstream request the gateway names
that request's `LogRoute` (`logging_to`): the client's level and how to write to its response stream.

Which request a message belongs to:
- a 2026-07-28 HTTP upstream: exactly, as it comes on that request's own response stream
  (servers.upstream.relay reads it);
- a shared connection (stdio, the handshake era) does not say: a message goes to the client
  request in flight there only while it is the only one (`ClientRelay`), else it is dropped,
  never sent to another client.

Levels upstream: a 2026-07-28 upstream gets the route's level in the request's `_meta`; a
handshake-era connection is set (`logging/setLevel`) to the most verbose level wanted: the hub-wide
one of its handshake-era sessions (`set_hub_level`) and those of the calls in flight on it
(servers.upstream.session). Every route drops what is below its own level. This module imports no Django.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from pydantic import ValidationError

logger = logging.getLogger(__name__)

LOG_LEVELS: tuple[types.LoggingLevel, ...] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)
# `_meta` key on a relayed message naming the hub server it comes from (the aggregated /mcp serves many).
SERVER_META_KEY = "io.mcphub/server"
NOTIFICATION = "notifications/message"

LogEmit = Callable[[types.LoggingMessageNotificationParams], Awaitable[None]]


def requested_level(meta: Mapping[str, Any] | None) -> types.LoggingLevel | None:
    """The level a 2026-07-28 request's `_meta` opts in at; None when it does not opt in (or names no level)."""
    requested = meta.get(types.LOG_LEVEL_META_KEY) if isinstance(meta, Mapping) else None
    return next((level for level in LOG_LEVELS if level == requested), None)


def most_verbose(levels: Iterable[types.LoggingLevel | None]) -> types.LoggingLevel | None:
    """The most verbose of `levels` (None entries ignored; None when there is none)."""
    return min((level for level in levels if level is not None), key=LOG_LEVELS.index, default=None)


@dataclass(eq=False)
class LogRoute:
    """One client request's log messages: the level it wants and its response stream.

    `level` None: every level (a handshake-era client that set none). `label`: on /mcp, which
    aggregates servers, the logger is prefixed `<slug>/` and `_meta` names the server.
    """

    level: types.LoggingLevel | None
    emit: LogEmit
    label: bool = False

    def wants(self, level: types.LoggingLevel) -> bool:
        return self.level is None or LOG_LEVELS.index(level) >= LOG_LEVELS.index(self.level)

    @property
    def upstream_level(self) -> types.LoggingLevel:
        """The level to ask a 2026-07-28 upstream for on this route's behalf."""
        return self.level or "debug"

    async def relay(self, slug: str, params: types.LoggingMessageNotificationParams | Any) -> None:
        """Pass one message of upstream `slug` on, if at or above the level; never raises (the call goes on)."""
        try:
            if not isinstance(params, types.LoggingMessageNotificationParams):
                params = types.LoggingMessageNotificationParams.model_validate(params, by_name=False)
        except ValidationError:
            logger.debug("upstream %s: malformed log message dropped", slug)
            return
        if not self.wants(params.level):
            return
        if self.label:
            meta = {**(params.meta or {}), SERVER_META_KEY: slug}
            params = params.model_copy(update={"meta": meta, "logger": f"{slug}/{params.logger or ''}"})
        try:
            with anyio.fail_after(5):
                await self.emit(params)
        except Exception as exc:  # the client went away: the message is lost, the call goes on
            logger.debug("upstream %s: relaying a log message failed: %s", slug, exc)


ROUTE: ContextVar[LogRoute | None] = ContextVar("mcphub_log_route", default=None)


@contextmanager
def logging_to(route: LogRoute | None) -> Iterator[None]:
    """Name where the log messages of the upstream requests made inside go."""
    token = ROUTE.set(route)
    try:
        yield
    finally:
        ROUTE.reset(token)


def with_level(params: dict[str, Any], route: LogRoute | None) -> dict[str, Any]:
    """A 2026-07-28 request's params with the route's level in `_meta` (unchanged without a route)."""
    if route is None:
        return params
    return {**params, "_meta": {**(params.get("_meta") or {}), types.LOG_LEVEL_META_KEY: route.upstream_level}}


# The level the hub's handshake-era sessions asked for (None: none did), set by the gateway.
_hub_level: Callable[[], types.LoggingLevel | None] = lambda: None  # noqa: E731


def set_hub_level(source: Callable[[], types.LoggingLevel | None]) -> None:
    """Where handshake-era upstream connections read the level every connection is set to at least."""
    global _hub_level
    _hub_level = source


def hub_level() -> types.LoggingLevel | None:
    return _hub_level()
