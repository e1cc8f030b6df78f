"""An in-memory snapshot of what /mcp offers, so a call touches no database or Redis.

Rebuilt from PostgreSQL and the cached tool lists when the registry version in
Redis moves (servers.discovery.bump_registry_version), checked at most once a
second by the gateway's refresh loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import mcp_types as types
from mcp.shared.inbound import find_invalid_x_mcp_header, x_mcp_header_map

from servers.discovery import cached_tools
from servers.gateway.names import public_name, public_uri
from servers.models import McpServer, Status
from servers.upstream.config import UpstreamConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerEntry:
    id: int
    slug: str
    status: str
    config: UpstreamConfig
    tools: dict[str, dict[str, Any]]  # public name -> MCP tool dict (with the public name)
    tool_names: dict[str, str]  # public name -> upstream name
    resources: list[dict[str, Any]]
    prompts: list[dict[str, Any]]
    # Validated once per snapshot, not per request: tools/list is the hot read.
    public_tools: list[types.Tool] = field(default_factory=list)
    original_tools: list[types.Tool] = field(default_factory=list)
    status_changed_at: datetime | None = None  # when `status` was set: the circuit breaker's cool-down
    # Upstream tool name -> its x-mcp-header map, for tools that mirror arguments into Mcp-Param-* headers.
    param_header_maps: dict[str, dict[tuple[str, ...], str]] = field(default_factory=dict)
    capabilities: dict[str, Any] | None = None  # as the server announced them (None: not known yet)
    extensions: dict[str, Any] = field(default_factory=dict)  # of `capabilities` (SEP-2133: identifier -> settings)

    @property
    def down(self) -> bool:
        return self.status == Status.DOWN


@dataclass(frozen=True)
class Snapshot:
    version: int = -1
    servers: dict[str, ServerEntry] = field(default_factory=dict)  # by slug
    tool_index: dict[str, tuple[ServerEntry, str]] = field(default_factory=dict)  # public name -> (server, tool)

    def tool_signature(self) -> frozenset[str]:
        return frozenset(self.tool_index)


def build_snapshot(version: int) -> Snapshot:
    """Read every enabled server and its visible tools (blocking: the gateway runs it through run_blocking)."""
    servers: dict[str, ServerEntry] = {}
    index: dict[str, tuple[ServerEntry, str]] = {}
    queryset = McpServer.objects.filter(enabled=True).prefetch_related("resources", "prompts")
    for server in queryset:
        entry = _entry(server)
        servers[server.slug] = entry
        for public, original in entry.tool_names.items():
            index[public] = (entry, original)
    return Snapshot(version, servers, index)


def _entry(server: McpServer) -> ServerEntry:
    tools: dict[str, dict[str, Any]] = {}
    names: dict[str, str] = {}
    for tool in cached_tools(server):
        public = public_name(server.slug, tool["name"])
        if public in names:
            logger.error("server %s: tool %r shortens to %r, already taken; hidden", server.slug, tool["name"], public)
            continue
        names[public] = tool["name"]
        tools[public] = {**tool, "name": public}
    resources = [
        {
            "uri": public_uri(server.slug, resource.uri),
            "name": f"{server.slug}/{resource.name}",
            **({"description": resource.description} if resource.description else {}),
            **({"mimeType": resource.mime_type} if resource.mime_type else {}),
        }
        for resource in server.resources.all()
        if resource.enabled
    ]
    prompts = [
        {
            "name": public_name(server.slug, prompt.name),
            "original": prompt.name,
            **({"description": prompt.description} if prompt.description else {}),
            "arguments": prompt.arguments,
        }
        for prompt in server.prompts.all()
        if prompt.enabled
    ]
    return ServerEntry(
        server.pk,
        server.slug,
        server.status,
        server.upstream_config(),
        tools,
        names,
        resources,
        prompts,
        public_tools=[types.Tool.model_validate(tool) for tool in tools.values()],
        original_tools=[types.Tool.model_validate({**tool, "name": names[public]}) for public, tool in tools.items()],
        status_changed_at=server.status_changed_at,
        param_header_maps=_param_header_maps(tools.values(), names),
        capabilities=server.capabilities,
        extensions=(server.capabilities or {}).get("extensions") or {},
    )


def _param_header_maps(tools: Iterable[dict[str, Any]], names: dict[str, str]) -> dict[str, dict[tuple[str, ...], str]]:
    """The x-mcp-header maps of the tools that have valid ones (the SDK client drops tools with invalid ones)."""
    maps = {}
    for tool in tools:
        schema = tool.get("inputSchema")
        if find_invalid_x_mcp_header(schema) is None and (header_map := x_mcp_header_map(schema)):
            maps[names[tool["name"]]] = header_map
    return maps


LISTS = ("tools", "prompts", "resources")


def changed_lists(old: Snapshot, new: Snapshot) -> list[tuple[int, str]]:
    """(server id, "tools" | "prompts" | "resources") for each list that differs between two snapshots."""
    changes = []
    for slug in old.servers.keys() | new.servers.keys():
        before, after = old.servers.get(slug), new.servers.get(slug)
        server_id = (after or before).id  # type: ignore[union-attr]  # one of them is there
        for kind in LISTS:
            if (getattr(before, kind, None) or None) != (getattr(after, kind, None) or None):  # absent = empty
                changes.append((server_id, kind))
    return changes
