"""The servers app's settings: one frozen object read from Django settings, every default written here once.

The environment sets those the README documents under the same name (``mcphub/settings.py``). The pool
settings are the upstream layer's own value object (`PoolSettings`, defaults there), built here from
``MCPHUB_POOL_<FIELD>``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from django.conf import settings

from logs.conf import read_once
from servers.upstream.pool import PoolSettings


@dataclass(frozen=True)
class ServersConf:
    tool_separator: str  # MCPHUB_TOOL_SEPARATOR: /mcp tool names are <slug><separator><tool>
    max_request_bytes: int  # MCPHUB_MAX_REQUEST_BYTES: largest request body /mcp accepts (then 413)
    max_queued_calls: int  # MCPHUB_MAX_QUEUED_CALLS: calls waiting for a free slot of one server
    # MCPHUB_MAX_HELD_CALLS: per token, calls to handshake-era servers held while a 2026-07-28 client
    # answers their questions (servers/gateway/held_calls.py)
    max_held_calls: int
    # MCPHUB_SSE_KEEPALIVE_SECONDS: a stateless-era call silent this long is answered as an SSE stream with
    # keep-alive pings (as the SDK does), so that a proxy's idle-read timeout does not cut a long call
    sse_keepalive_seconds: float
    # MCPHUB_ALLOWED_ORIGINS: origins allowed to call /mcp from a browser (hosts come from ALLOWED_HOSTS)
    allowed_origins: tuple[str, ...]
    tools_cache_ttl: int  # MCPHUB_TOOLS_CACHE_TTL: seconds a server's tool list stays cached in Redis
    # MCPHUB_RELIST_MIN_INTERVAL: seconds between two re-listings of one server after its
    # notifications/tools/list_changed (further announcements meanwhile are coalesced into the next one)
    relist_min_interval: float
    # MONITORING_BREAKER_COOLDOWN: seconds after a server went down before the breaker lets a trial call go
    # (the name is the one documented next to the health checks; the breaker is the gateway's)
    breaker_cooldown: float
    # MCPHUB_FAST_PATH: the stateless hot path (servers/gateway/stateless.py, servers/upstream/relay.py); off,
    # every /mcp request goes through the SDK's session manager
    fast_path: bool
    pool: PoolSettings  # MCPHUB_POOL_SCALE_UP_INFLIGHT, ..._PROBE_INTERVAL: autoscaling and probing of pools

    def __post_init__(self) -> None:
        if not self.tool_separator or any(c.isalnum() or c == "-" for c in self.tool_separator):
            raise ValueError("MCPHUB_TOOL_SEPARATOR must be non-empty and contain no letters, digits or '-'")

    @classmethod
    def from_settings(cls) -> ServersConf:
        pool = {
            field.name: float(getattr(settings, f"MCPHUB_POOL_{field.name.upper()}"))
            for field in fields(PoolSettings)
            if hasattr(settings, f"MCPHUB_POOL_{field.name.upper()}")
        }
        return cls(
            tool_separator=str(getattr(settings, "MCPHUB_TOOL_SEPARATOR", "__")),
            max_request_bytes=int(getattr(settings, "MCPHUB_MAX_REQUEST_BYTES", 4 * 1024 * 1024)),
            max_queued_calls=int(getattr(settings, "MCPHUB_MAX_QUEUED_CALLS", 64)),
            max_held_calls=int(getattr(settings, "MCPHUB_MAX_HELD_CALLS", 16)),
            sse_keepalive_seconds=float(getattr(settings, "MCPHUB_SSE_KEEPALIVE_SECONDS", 15.0)),
            allowed_origins=tuple(getattr(settings, "MCPHUB_ALLOWED_ORIGINS", ())),
            tools_cache_ttl=int(getattr(settings, "MCPHUB_TOOLS_CACHE_TTL", 300)),
            relist_min_interval=float(getattr(settings, "MCPHUB_RELIST_MIN_INTERVAL", 5.0)),
            breaker_cooldown=float(getattr(settings, "MONITORING_BREAKER_COOLDOWN", 30.0)),
            fast_path=bool(getattr(settings, "MCPHUB_FAST_PATH", True)),
            pool=PoolSettings(**pool),
        )


servers_conf = read_once(ServersConf.from_settings)
