"""Which connection serves a downstream client of a given era: a dual-era server gets a second one.

A server's era is detected once (`servers.upstream.session`) and, for a server that speaks both
eras, it is 2026-07-28. A handshake-era client (2025-11-25 and older) would then lose what only a
handshake-era connection carries: server-to-client requests on the call's stream (sampling,
elicitation, roots), `resources/subscribe`, `logging/setLevel`. So its requests go to the server's
handshake *variant* (`UpstreamConfig.in_era("handshake")`): a pool of its own, started on the first
such request, stopped when idle like any other. Servers detected as handshake-era keep their one
connection. A server that refuses the handshake (2026-only) serves those clients on its 2026
connection; the refusal is remembered for the process (per configuration version), so it costs
one connect attempt, not one per request.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
from mcp import MCPError
from mcp_types import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, UNSUPPORTED_PROTOCOL_VERSION
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from servers.upstream.config import UpstreamConfig

if TYPE_CHECKING:  # the pool's sessions import `refuses_handshake` from here
    from servers.upstream.pool import UpstreamPool

logger = logging.getLogger(__name__)

HANDSHAKE = "handshake"
# Answers to `initialize` that say "not this era" (an outage, a timeout or a crash says nothing of the era).
REFUSALS = frozenset({UNSUPPORTED_PROTOCOL_VERSION, METHOD_NOT_FOUND, INVALID_REQUEST, INVALID_PARAMS})
SETTLE_POLL = 0.02


def refuses_handshake(exc: BaseException) -> bool:
    """Whether a failed handshake-era connect was the server answering that it does not speak that era."""
    pending: list[BaseException] = [exc]
    while pending:
        error = pending.pop()
        if isinstance(error, BaseExceptionGroup):
            pending.extend(error.exceptions)
        elif isinstance(error, MCPError) and error.code in REFUSALS:
            return True
        elif isinstance(error, RuntimeError) and "Unsupported protocol version" in str(error):
            return True  # the SDK's words for an `initialize` answered with a 2026-era version
    return False


def speaks_2026(primary: UpstreamPool) -> bool:
    """The server's main connection is (or was last detected) 2026-07-28."""
    return primary.protocol_version in MODERN_PROTOCOL_VERSIONS


class EraVariants:
    """The handshake variants of one process's dual-era servers, and the servers known to refuse one."""

    def __init__(self) -> None:
        self.pools: dict[int, UpstreamPool] = {}
        self._refused: dict[int, int] = {}  # server id -> configuration version that refused the handshake

    def wanted(self, config: UpstreamConfig, primary: UpstreamPool) -> bool:
        """A handshake-era client of this server needs a connection other than the main one."""
        if config.transport == "sse" or not speaks_2026(primary):
            return False  # the legacy SSE transport is handshake-only; a handshake-era server has one connection
        return self._refused.get(config.id, 0) < config.config_version

    def current(self, config: UpstreamConfig) -> UpstreamPool | None:
        """The live variant for this configuration, else None (a stale one is retired)."""
        variant = self.pools.get(config.id)
        if variant is not None and variant.usable and variant.config.config_version >= config.config_version:
            return variant
        if variant is not None:
            variant.retire()
            del self.pools[config.id]
        return None

    async def settled(self, variant: UpstreamPool) -> bool:
        """Wait (bounded by the connect timeout) for the variant's first connect; False if the server refused it."""
        config = variant.config
        with anyio.move_on_after(config.connect_timeout + 1):
            while variant.state == "connecting" and not variant.refused:
                await anyio.sleep(SETTLE_POLL)
        if not variant.refused:
            return True
        variant.stop()
        if self.pools.get(config.id) is variant:  # the first of the requests that waited for it
            del self.pools[config.id]
            self._refused[config.id] = config.config_version
            logger.info(
                "upstream %s refuses the handshake era: its handshake-era clients are served on its "
                "2026-07-28 connection",
                config.slug,
            )
        return False

    def stop_all(self) -> None:
        for pool in self.pools.values():
            pool.stop()
        self.pools.clear()
