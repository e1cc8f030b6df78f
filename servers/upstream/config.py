"""Plain connection settings of one upstream, detached from the ORM (usable in any task or thread)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class UpstreamConfig:
    id: int
    slug: str
    transport: str  # "stdio" | "streamable_http" | "sse"
    command: str = ""
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    connect_timeout: float = 10.0
    call_timeout: float = 60.0
    idle_timeout: float = 0.0
    max_concurrent_calls: int = 16
    era: str = ""  # "" (detect), "stateless" or "handshake"
    protocol_version: str = ""
    config_version: int = 1
    # Pool: stdio replicas of the same command, or `url` plus `replica_urls` for HTTP.
    min_instances: int = 1
    max_instances: int = 1
    balancing_policy: str = "least_connections"
    instance_max_concurrent_calls: int = 0  # 0: no per-instance limit
    replica_urls: tuple[str, ...] = ()
    # "handshake": the extra connection of a dual-era server for handshake-era clients (servers.upstream.eras).
    variant: str = ""

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> UpstreamConfig:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        for name in ("args", "replica_urls"):
            if name in known:
                known[name] = tuple(known[name])
        return cls(**known)

    @property
    def urls(self) -> tuple[str, ...]:
        """Every HTTP instance's URL: `url` first, then the replicas."""
        return (self.url, *self.replica_urls)

    @property
    def autoscaled(self) -> bool:
        """Only stdio replicas scale; an HTTP pool has one instance per URL."""
        return self.transport == "stdio" and self.max_instances > self.min_instances

    def single(self) -> UpstreamConfig:
        """This server as one instance (discovery and probes need one connection, not the whole pool)."""
        return replace(self, min_instances=1, max_instances=1, replica_urls=())

    def in_era(self, era: str) -> UpstreamConfig:
        """This server's variant pinned to `era`: its own connection, whose era is never recorded as the server's."""
        return replace(self, era=era, variant=era)
