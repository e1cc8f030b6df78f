"""Discovery: list an upstream's tools, resources and prompts, upsert them, refresh the tool cache."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import anyio
from asgiref.sync import async_to_sync
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from servers.blocking import run_blocking
from servers.conf import servers_conf
from servers.hooks import django_hooks
from servers.models import McpServer, Prompt, Resource, Tool
from servers.upstream.config import UpstreamConfig
from servers.upstream.interface import Upstream
from servers.upstream.manager import upstream_manager
from servers.upstream.session import describe, era_of


@dataclass(frozen=True)
class Discovered:
    tools: list[Any]
    resources: list[Any]
    prompts: list[Any]
    era: str
    protocol_version: str
    capabilities: dict[str, Any] | None = None  # as announced (wire JSON); None: unknown


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    latency_ms: float
    era: str = ""
    protocol_version: str = ""
    error: str = ""


async def _with_session(
    config: UpstreamConfig, work: Any, on_tools_changed: Callable[[int], None] | None = None
) -> Any:
    """Connect once (one process of its own for stdio, even for a pool), run `work(session)`, disconnect.

    A list change heard here triggers nothing beyond `on_tools_changed` (the default: nothing at all).
    """
    async with anyio.create_task_group() as hook_writes:
        hooks = django_hooks(hook_writes.start_soon, on_tools_changed)
        async with upstream_manager(hooks) as manager:
            return await work(manager.pool(config.single()))


async def _fetch(session: Upstream) -> Discovered:
    tools = await session.list_tools()
    resources = await session.list_resources()
    prompts = await session.list_prompts()
    # A handshake variant (servers.upstream.eras) lists what the server offers, but its era is not the server's.
    version = session.config.protocol_version if session.config.variant else session.protocol_version
    capabilities = session.server_capabilities
    announced = capabilities.model_dump(mode="json", by_alias=True, exclude_none=True) if capabilities else None
    return Discovered(tools, resources, prompts, era_of(version), version, announced)


@dataclass
class _ChangesHeard:
    """How many notifications/tools/list_changed one discovery session has heard."""

    count: int = 0

    def hear(self, server_id: int) -> None:
        self.count += 1


async def _fetch_settled(session: Upstream, changes: _ChangesHeard) -> Discovered:
    """List; if the server announced a change meanwhile (e.g. tools it adds right after connect), list once more.

    Once only: a server that announces a change on every listing must not hold the session in a loop.
    """
    heard = changes.count
    found = await _fetch(session)
    if changes.count != heard:
        found = await _fetch(session)
    return found


def discover(server: McpServer) -> Discovered | None:
    """Connect, list everything (all pages), upsert; returns None and records the error on failure."""
    changes = _ChangesHeard()
    try:
        found = async_to_sync(_with_session)(
            server.upstream_config(), lambda session: _fetch_settled(session, changes), changes.hear
        )
    except Exception as exc:
        McpServer.objects.filter(pk=server.pk).update(discovery_error=describe(exc))
        return None
    store(server, found)
    return found


async def rediscover_live(server_id: int, session: Upstream) -> None:
    """Re-list through a live session (after its notifications/tools/list_changed) and store the result.

    A fresh connection would not do: a server's runtime tool changes live in that process.
    """
    found = await _fetch(session)
    await run_blocking(_store_by_id, server_id, found)


def _store_by_id(server_id: int, found: Discovered) -> None:
    server = McpServer.objects.filter(pk=server_id).first()
    if server is not None:
        store(server, found)


@transaction.atomic
def store(server: McpServer, found: Discovered) -> None:
    """Upsert what discovery found; capabilities no longer offered are removed."""
    # Row lock: two discoveries of one server (worker and gateway) store one after the other.
    McpServer.objects.select_for_update().filter(pk=server.pk).first()
    now = timezone.now()
    _upsert(
        Tool,
        server,
        "name",
        {
            tool.name: {
                "title": tool.title or "",
                "description": tool.description or "",
                "input_schema": tool.input_schema,
                "output_schema": tool.output_schema,
                "annotations": tool.annotations.model_dump(mode="json", exclude_none=True)
                if tool.annotations
                else None,
            }
            for tool in found.tools
        },
        now,
    )
    _upsert(
        Resource,
        server,
        "uri",
        {
            str(resource.uri): {
                "name": resource.name,
                "title": resource.title or "",
                "description": resource.description or "",
                "mime_type": resource.mime_type or "",
            }
            for resource in found.resources
        },
        now,
    )
    _upsert(
        Prompt,
        server,
        "name",
        {
            prompt.name: {
                "title": prompt.title or "",
                "description": prompt.description or "",
                "arguments": [a.model_dump(mode="json", exclude_none=True) for a in prompt.arguments or []],
            }
            for prompt in found.prompts
        },
        now,
    )
    McpServer.objects.filter(pk=server.pk).update(
        last_discovered_at=now,
        discovery_error="",
        era=found.era,
        protocol_version=found.protocol_version,
        capabilities=found.capabilities,
    )
    transaction.on_commit(lambda: invalidate_tool_cache(server.pk))


def _upsert(model: Any, server: McpServer, key: str, found: dict[str, dict[str, Any]], now: Any) -> None:
    existing = {getattr(row, key): row for row in model.objects.filter(server=server)}
    for identity, fields in found.items():
        row = existing.pop(identity, None)
        if row is None:
            model.objects.create(server=server, **{key: identity}, **fields, first_seen=now, last_seen=now)
        else:
            for name, value in fields.items():
                setattr(row, name, value)
            row.last_seen = now
            row.save()
    model.objects.filter(pk__in=[row.pk for row in existing.values()]).delete()


# --- tool-list cache --------------------------------------------------------------------


def _tool_cache_key(server: McpServer) -> str:
    # The filter version is in the key: an allow/deny-list edit can never serve the old list.
    return f"tools:{server.pk}:{server.filter_version}"


def cached_tools(server: McpServer) -> list[dict[str, Any]]:
    """The server's visible, enabled tools as MCP tool dicts, from Redis (filled from the database)."""
    key = _tool_cache_key(server)
    tools = cache.get(key)
    if tools is None:
        tools = [
            tool_to_dict(tool)
            for tool in server.tools.filter(enabled=True).order_by("name")
            if server.tool_visible(tool.name)
        ]
        cache.set(key, tools, servers_conf().tools_cache_ttl)
    return tools


def invalidate_tool_cache(server_id: int) -> None:
    cache.delete_pattern(f"tools:{server_id}:*")
    bump_registry_version()


REGISTRY_VERSION_KEY = "registry:version"


def bump_registry_version() -> None:
    """Tell every web process that servers or tools changed: gateways reload their snapshot."""
    try:
        cache.incr(REGISTRY_VERSION_KEY)
    except ValueError:  # the key does not exist yet
        cache.set(REGISTRY_VERSION_KEY, 1, timeout=None)


def registry_version() -> int:
    return int(cache.get(REGISTRY_VERSION_KEY) or 0)


def tool_to_dict(tool: Tool) -> dict[str, Any]:
    data: dict[str, Any] = {"name": tool.name, "inputSchema": tool.input_schema or {"type": "object"}}
    if tool.title:
        data["title"] = tool.title
    if tool.description:
        data["description"] = tool.description
    if tool.output_schema:
        data["outputSchema"] = tool.output_schema
    if tool.annotations:
        data["annotations"] = tool.annotations
    return data


# --- probe ----------------------------------------------------------------------------------


def probe(server: McpServer, *, call_timeout: float | None = None) -> ProbeResult:
    """Connect and make one era-appropriate round trip (ping, or server/discover); never raises.

    ``call_timeout`` bounds each round trip (default: the server's own call timeout).
    """

    async def round_trip(session: Upstream) -> ProbeResult:
        await session.ping()
        started = time.perf_counter()
        await session.ping()
        version = session.protocol_version
        return ProbeResult(True, (time.perf_counter() - started) * 1000, era_of(version), version)

    started = time.perf_counter()
    try:
        config = server.upstream_config()
        if call_timeout is not None:
            config = replace(config, call_timeout=call_timeout)
        return async_to_sync(_with_session)(config, round_trip)
    except Exception as exc:
        return ProbeResult(False, (time.perf_counter() - started) * 1000, error=describe(exc))
