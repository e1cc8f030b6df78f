"""Plain connection settings of one upstream, detached from the ORM (usable in any task or thread)."""

from __future__ import annotations

from dataclasses import dataclass, field
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

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> UpstreamConfig:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        if "args" in known:
            known["args"] = tuple(known["args"])
        return cls(**known)
