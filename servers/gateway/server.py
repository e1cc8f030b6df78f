"""The hub's own MCP server: every enabled server's tools, resources and prompts behind one endpoint.

Built on the SDK's low-level `Server` and its streamable-HTTP session manager,
which serve both protocol eras on one endpoint (the 2026-07-28 stateless one
and the handshake era with `Mcp-Session-Id`). Requests for `/mcp` see
namespaced names; requests for `/mcp/<slug>/` see that server's original names.
Lists come from the in-memory snapshot; calls go to the upstream layer.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import anyio
import mcp_types as types
from django.conf import settings
from django.db import DatabaseError
from mcp.server import InitializationOptions, NotificationOptions, Server
from mcp.server.context import CallNext, HandlerResult
from mcp.server.session import ServerSession
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.inbound import mcp_param_headers
from mcp.shared.subscriptions import ResourceUpdated
from mcp_types import SERVER_INFO_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from servers import outages
from servers.blocking import run_blocking
from servers.conf import servers_conf
from servers.discovery import rediscover_live, registry_version
from servers.gateway import instances, metrics, rounds, tasks
from servers.gateway.breaker import CircuitBreaker, request_health_check
from servers.gateway.capabilities import advertised
from servers.gateway.held_calls import HeldCalls
from servers.gateway.listen import LIST_EVENTS, Audience, Change, HubListen
from servers.gateway.log_levels import LogLevels
from servers.gateway.names import public_uri, split_uri
from servers.gateway.recorder import CallRecorder, live_tail
from servers.gateway.registry import ServerEntry, Snapshot, build_snapshot, changed_lists
from servers.gateway.resumable import RETRY_MS, ResumableSessionManager
from servers.gateway.scope import CURRENT_SLUG, Ctx, RequestScope
from servers.gateway.subscriptions import Subscriptions
from servers.hooks import django_hooks
from servers.tokens import TokenInfo
from servers.upstream.errors import UpstreamError, UpstreamOverloaded, UpstreamTimeout
from servers.upstream.interface import Upstream
from servers.upstream.log_routes import logging_to, set_hub_level
from servers.upstream.manager import UpstreamManager, upstream_manager
from servers.upstream.pool import UpstreamPool
from servers.upstream.requester import Requester, requesting, set_directory

logger = logging.getLogger(__name__)

# The SDK warns that logging and roots are deprecated as of 2026-07-28; the hub serves handshake-era
# clients (2025-11-25 and older) too, which still use both, so the handlers stay and the warning goes.
warnings.filterwarnings(
    "ignore", r"The (logging|roots) capability is deprecated", MCPDeprecationWarning, module=__name__
)

T = TypeVar("T")

REFRESH_SECONDS = 1.0
SNAPSHOT_MAX_AGE = 30.0
MAX_REMEMBERED_SESSIONS = 10_000
# An upstream's list change is announced once the re-listing is stored, or after this long if it takes
# longer (or waits for MCPHUB_RELIST_MIN_INTERVAL): a client hears soon, and again once the lists changed.
ANNOUNCE_WITHIN = 0.5
SEND_LIST_CHANGED: dict[str, Callable[[ServerSession], Awaitable[None]]] = {
    "tools": ServerSession.send_tool_list_changed,
    "prompts": ServerSession.send_prompt_list_changed,
    "resources": ServerSession.send_resource_list_changed,
}


class HubServer(Server[Any]):
    """Advertises list_changed in the handshake era (the session manager asks for default options)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        options = notification_options or NotificationOptions(
            tools_changed=True, prompts_changed=True, resources_changed=True
        )
        return super().create_initialization_options(options, experimental_capabilities, extensions)


class ServerGate:
    """Per-server concurrency: `limit` calls at once, a bounded number waiting, then "overloaded"."""

    def __init__(self, limit: int, queue_limit: int) -> None:
        self.limit = limit
        self.queue_limit = queue_limit
        self.waiting = 0
        self._semaphore = anyio.Semaphore(limit)

    @asynccontextmanager
    async def slot(self, slug: str, timeout: float) -> AsyncIterator[None]:
        if self._semaphore.value > 0:
            self._semaphore.acquire_nowait()  # the common case: no timer to set up and cancel
        else:
            await self._wait_for_slot(slug, timeout)
        try:
            yield
        finally:
            self._semaphore.release()

    async def _wait_for_slot(self, slug: str, timeout: float) -> None:
        if self.waiting >= self.queue_limit:
            raise UpstreamOverloaded(slug, f"{self.waiting} calls already waiting for a free slot")
        self.waiting += 1
        try:
            with anyio.fail_after(timeout):
                await self._semaphore.acquire()
        except TimeoutError as exc:
            raise UpstreamTimeout(slug, f"no free call slot within {timeout:g} s") from exc
        finally:
            self.waiting -= 1


def _security_settings() -> TransportSecuritySettings:
    """DNS-rebinding protection from ALLOWED_HOSTS and MCPHUB_ALLOWED_ORIGINS."""
    hosts = list(settings.ALLOWED_HOSTS)
    if "*" in hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    allowed_hosts = [pattern for host in hosts for pattern in (host, f"{host}:*")]
    origins = list(servers_conf().allowed_origins) + [
        f"{scheme}://{host}:*" for host in hosts for scheme in ("http", "https")
    ]
    origins += [f"{scheme}://{host}" for host in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=allowed_hosts, allowed_origins=origins
    )


class Gateway:
    """One per web process: the MCP server, its session manager, the upstreams and the snapshot."""

    def __init__(self) -> None:
        self.snapshot = Snapshot()
        self.upstreams: UpstreamManager | None = None
        self._gates: dict[int, ServerGate] = {}
        self.breaker = CircuitBreaker()
        # Handshake-era sessions by Mcp-Session-Id (strong references: a request's ctx.session is
        # otherwise collected when the request ends). Pruned when a send fails; bounded.
        self._downstream: dict[str, tuple[ServerSession, RequestScope]] = {}
        self._snapshot_at = 0.0
        self._rediscovering: set[int] = set()
        self._rediscover_again: set[int] = set()
        self._relisted_at: dict[int, float] = {}  # server id -> monotonic start of its last re-listing
        self._pass_done: dict[int, anyio.Event] = {}  # server id -> set when its next re-listing pass is stored
        self._announced_at: dict[tuple[int, str], float] = {}  # (server id, list kind) -> monotonic
        self._listen = HubListen(self._listen_audience)
        self.log_levels = LogLevels()
        self.subscriptions = Subscriptions()
        self.held_calls = HeldCalls()
        self.server = HubServer(
            "mcphub",
            version="1.0",
            instructions="Tools of every MCP server registered in this hub, named <server>__<tool>.",
            get_tool_input_schema=self.input_schema,
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
            on_list_resources=self.list_resources,
            on_read_resource=self.read_resource,
            on_list_prompts=self.list_prompts,
            on_get_prompt=self.get_prompt,
            on_subscriptions_listen=self._listen,
            on_set_logging_level=self.set_logging_level,
            on_completion=self.complete,
            on_subscribe_resource=self.subscribe_resource,
            on_unsubscribe_resource=self.unsubscribe_resource,
            on_list_resource_templates=self.list_resource_templates,
            on_roots_list_changed=self.roots_changed,
        )
        self.server.middleware.append(self._remember_session)
        self.server.middleware.append(self._advertise)
        self.server.add_request_handler("server/discover", types.RequestParams, self.discover)
        for method in tasks.METHODS:
            self.server.add_request_handler(method, types.GetTaskRequestParams, self.task_request)
        # Server-to-client requests belonging to no call go to a connected session that can answer.
        set_directory(self._sessions_allowed_on)
        set_hub_level(self.log_levels.upstream_level)
        self._server_info = self.server.server_info_stamp  # serialized only, never changed: one copy will do
        self.session_manager = ResumableSessionManager(
            app=self.server,
            retry_interval=RETRY_MS,
            security_settings=_security_settings(),
            max_request_body_size=servers_conf().max_request_bytes,
        )

    # --- lifecycle ---------------------------------------------------------------------

    async def run(self, started: Callable[[], None], stop: anyio.Event) -> None:
        """Serve until `stop` is set: upstream sessions, the SDK session manager, the refresh loop.

        Work off the call path runs as tasks of this event loop: the live tail's sender and the
        upstream hooks' writes in the gateway's task group (it outlives the upstreams, so the last
        writes finish), re-discoveries and health-check requests in the upstream manager's.
        """
        async with anyio.create_task_group() as tasks:
            live = await tasks.start(live_tail.run)
            hooks = replace(
                django_hooks(tasks.start_soon),
                on_resource_updated=self._on_upstream_resource_updated,
                on_list_changed=self._on_upstream_list_changed,
            )
            async with upstream_manager(hooks, servers_conf().pool) as upstreams, self.session_manager.run():
                self.upstreams = upstreams
                with metrics.serving(upstreams):
                    await self.refresh(force=True)
                    started()
                    await self._refresh_until(stop, upstreams)
                self.upstreams = None
            await run_blocking(instances.withdraw)
            live.cancel()

    async def _refresh_until(self, stop: anyio.Event, upstreams: UpstreamManager) -> None:
        """Every REFRESH_SECONDS: the snapshot; every PUBLISH_EVERY: this process's instance rows."""
        published = 0.0
        while not stop.is_set():
            with anyio.move_on_after(REFRESH_SECONDS):
                await stop.wait()
            try:
                await self.refresh()
            except Exception:  # a bug, not an outage (refresh handles those): keep serving
                logger.exception("gateway snapshot refresh failed; keeping the previous one")
            if time.monotonic() - published >= instances.PUBLISH_EVERY:
                published = time.monotonic()
                # Taken here, in the pools' event loop; stored from a thread (a Redis write).
                rows = instances.local_rows(upstreams.pools())
                try:
                    await run_blocking(instances.publish, rows)
                except outages.CACHE_ERRORS as exc:
                    outages.redis.failed("publishing upstream instances", exc)

    def end_streams(self) -> None:
        """End every open long-lived stream (at shutdown): handshake-era GET streams and listen streams.

        Each ends as a complete response (the SSE stream closes; a listen stream sends its
        final result), so clients see a clean end, not a reset.
        """
        self._listen.close()
        # The SDK keeps its handshake-era transports in a private map and offers no public list.
        for transport in list(self.session_manager._server_instances.values()):
            transport.close_standalone_sse_stream()

    async def refresh(self, force: bool = False) -> None:
        """Reload the snapshot when the registry version moved; tell clients which servers' lists changed.

        Without Redis or PostgreSQL the previous snapshot stays (logged once per outage, not per try).
        """
        try:
            version = await run_blocking(registry_version)
        except outages.CACHE_ERRORS as exc:
            outages.redis.failed("gateway snapshot refresh", exc)
            return
        outages.redis.succeeded()
        stale = time.monotonic() - self._snapshot_at > SNAPSHOT_MAX_AGE
        if not force and not stale and version == self.snapshot.version:
            return
        old = self.snapshot
        try:
            self.snapshot = await run_blocking(build_snapshot, version)
        except DatabaseError as exc:
            outages.database.failed("gateway snapshot refresh", exc)
            return
        outages.database.succeeded()
        self._snapshot_at = time.monotonic()
        if old.version >= 0:
            for server_id, kind in changed_lists(old, self.snapshot):
                await self._announce(server_id, kind)

    def _on_upstream_list_changed(self, server_id: int, kind: str, variant: str) -> None:
        # Called from the upstream's message handler: re-list in the background, through the live session
        # that heard the change (a handshake variant's stdio process has a list of its own), and announce.
        upstreams = self.upstreams
        pools = upstreams.running_pools(server_id) if upstreams is not None else []
        pool = next((pool for pool in pools if pool.config.variant == variant), None)
        if upstreams is None or pool is None:
            return
        relisted = self._pass_done.setdefault(server_id, anyio.Event())
        upstreams.start_soon(self._announce_heard, server_id, kind, relisted)
        if server_id in self._rediscovering:
            self._rediscover_again.add(server_id)  # coalesced: one more pass after the running one
            return
        self._rediscovering.add(server_id)
        upstreams.start_soon(self._rediscover, server_id, pool)

    async def _rediscover(self, server_id: int, session: Upstream) -> None:
        """Re-list until no change is pending: one pass at a time, passes `MCPHUB_RELIST_MIN_INTERVAL` apart.

        Changes announced while a pass waits are covered by that pass; one announced during a
        listing gets one more pass. A server announcing changes non-stop costs one listing per interval.
        """
        try:
            while True:
                since = time.monotonic() - self._relisted_at.get(server_id, -math.inf)
                await anyio.sleep(max(0.0, servers_conf().relist_min_interval - since))
                self._rediscover_again.discard(server_id)
                self._relisted_at[server_id] = time.monotonic()
                done = self._pass_done.pop(server_id, None)  # the changes heard so far: this pass covers them
                logger.info("server %s announced a list change; re-listing", server_id)
                try:
                    await rediscover_live(server_id, session)
                    await self.refresh(force=True)
                except Exception:
                    logger.exception("re-discovery of server %s after list_changed failed", server_id)
                if done is not None:
                    done.set()
                if server_id not in self._rediscover_again:
                    break
        finally:
            self._rediscovering.discard(server_id)

    async def _announce_heard(self, server_id: int, kind: str, relisted: anyio.Event) -> None:
        """Announce a change an upstream announced, once re-listed (bounded); unless the re-listing's
        refresh already announced it."""
        heard = time.monotonic()
        with anyio.move_on_after(ANNOUNCE_WITHIN):
            await relisted.wait()
        if self._announced_at.get((server_id, kind), -math.inf) < heard:
            await self._announce(server_id, kind)

    async def _announce(self, server_id: int, kind: str) -> None:
        """Tell the clients that see this server that its `kind` list changed: listen streams, handshake sessions."""
        self._announced_at[(server_id, kind)] = time.monotonic()
        await self._listen.publish(Change(server_id, LIST_EVENTS[kind]))
        for session_id, (session, scope) in list(self._downstream.items()):
            if not self._sees(scope, server_id):
                continue
            try:
                with anyio.fail_after(5):
                    await SEND_LIST_CHANGED[kind](session)
            except Exception:
                self._downstream.pop(session_id, None)  # that client has gone

    async def _remember_session(self, ctx: Ctx, call_next: CallNext) -> HandlerResult:
        session_id = ctx.request.headers.get("mcp-session-id") if ctx.request is not None else None
        if session_id is None and ctx.method == "initialize":
            # The opening request has no id yet; its connection has the one the transport gave it (mcp 2.3.0
            # has no public accessor). Remembered now, the session's first call can take the hot path.
            session_id = ctx.session._connection.session_id
        if session_id and ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            if session_id not in self._downstream and len(self._downstream) >= MAX_REMEMBERED_SESSIONS:
                self._downstream.pop(next(iter(self._downstream)))  # forget the oldest
            self._downstream[session_id] = (ctx.session, RequestScope.of(ctx))
        return await call_next(ctx)

    def live_session(
        self, session_id: str, token: TokenInfo
    ) -> tuple[ServerSession, StreamableHTTPServerTransport] | None:
        """A handshake-era session this process holds, opened with `token` and seen by `_remember_session`:
        its (connection-level) session and its transport; None otherwise (servers.gateway.handshake)."""
        remembered = self._downstream.get(session_id)
        transport = self.session_manager._server_instances.get(session_id)
        if remembered is None or transport is None or transport.is_terminated:
            return None
        if transport.idle_scope is not None and transport.idle_scope.cancel_called:
            return None  # expired: the SDK answers, as for a session it is ending
        session, scope = remembered
        return (session, transport) if scope.token.id == token.id else None

    async def _advertise(self, ctx: Ctx, call_next: CallNext) -> HandlerResult:
        """`initialize` and `server/discover` advertise what the servers this token sees offer."""
        result = await call_next(ctx)
        if ctx.method in ("initialize", "server/discover") and isinstance(result, dict):
            capabilities = result.get("capabilities")
            if isinstance(capabilities, dict):
                result["capabilities"] = advertised(capabilities, self._visible(RequestScope.of(ctx)))
        return result

    def _sessions_allowed_on(self, slug: str) -> list[Requester]:
        """Connected handshake-era sessions whose token may use server `slug`, newest first."""
        entry = self.snapshot.servers.get(slug)
        if entry is None:
            return []
        sessions = reversed(self._downstream.values())
        return [Requester(session, owner=scope.token.id) for session, scope in sessions if scope.token.allows(entry.id)]

    # --- what a request may see ----------------------------------------------------------

    def _sees(self, scope: RequestScope, server_id: int) -> bool:
        """Whether a client of this scope sees this server (its changes are announced to it)."""
        if not scope.token.allows(server_id):
            return False
        return scope.slug is None or getattr(self.snapshot.servers.get(scope.slug), "id", None) == server_id

    def _visible(self, scope: RequestScope) -> list[ServerEntry]:
        if scope.slug is not None:
            entry = self.snapshot.servers.get(scope.slug)
            return [entry] if entry is not None and scope.token.allows(entry.id) else []
        return [entry for entry in self.snapshot.servers.values() if scope.token.allows(entry.id)]

    # --- tools ------------------------------------------------------------------------------

    async def list_tools(self, ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        scope = RequestScope.of(ctx)
        attribute = "original_tools" if scope.slug is not None else "public_tools"
        return types.ListToolsResult(
            tools=[tool for entry in self._visible(scope) for tool in getattr(entry, attribute)]
        )

    def input_schema(self, name: str) -> dict[str, Any] | None:
        """A tool's input schema for the SDK's Mcp-Param header check (else it would list every tool per call)."""
        return self.tool_input_schema(CURRENT_SLUG.get(), name)

    def tool_input_schema(self, slug: str | None, name: str) -> dict[str, Any] | None:
        """The input schema of a tool as named at the endpoint `/mcp` (slug None) or `/mcp/<slug>/`."""
        if slug is None:
            found = self.snapshot.tool_index.get(name)
            return found[0].tools[name]["inputSchema"] if found else None
        entry = self.snapshot.servers.get(slug)
        if entry is None:
            return None
        for public, original in entry.tool_names.items():
            if original == name:
                schema: dict[str, Any] = entry.tools[public]["inputSchema"]
                return schema
        return None

    def declares_param_headers(self, scope: RequestScope, name: str) -> bool:
        """Whether the tool mirrors arguments into Mcp-Param-* headers (x-mcp-header in its input schema)."""
        resolved = self._resolve_tool(scope, name)
        return resolved is not None and resolved[1] in resolved[0].param_header_maps

    def _resolve_tool(self, scope: RequestScope, name: str) -> tuple[ServerEntry, str] | None:
        if scope.slug is None:
            return self.snapshot.tool_index.get(name)
        entry = self.snapshot.servers.get(scope.slug)
        if entry is None:
            return None
        # A name the snapshot does not list still goes to the server: this endpoint answers as the server
        # would (a tool it serves unlisted, or added since the last discovery; else its own error).
        return entry, name

    def _tool_for_call(self, scope: RequestScope, call: CallRecorder, name: str) -> tuple[ServerEntry, str]:
        """The server and upstream tool name a call goes to; -32602 (recorded) for one unknown or not allowed."""
        resolved = self._resolve_tool(scope, name)
        if resolved is None:
            call.finish("protocol_error", error=f"unknown tool {name!r}", code=types.INVALID_PARAMS)
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {name}")
        entry, tool = resolved
        call.server(entry, tool)
        if not scope.token.allows(entry.id):
            # Same answer as for a tool that does not exist: a token learns nothing of other servers.
            call.finish("denied", error="token not allowed on this server", code=types.INVALID_PARAMS)
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {name}")
        return entry, tool

    async def call_tool(self, ctx: Ctx, params: types.CallToolRequestParams) -> Any:
        scope = RequestScope.of(ctx)
        call = CallRecorder.of(ctx, scope, params.name)
        modern = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
        if modern and rounds.takes_rounds(ctx.params) and not (ctx.meta and "progress_token" in ctx.meta):
            # Passed through as JSON (rounds and all): servers.gateway.rounds.
            with logging_to(self.log_levels.route(ctx, scope.slug is None)):
                result = await self._call_tool_dict(scope, call, dict(ctx.params or {}))
            size = len(json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode())
            call.finish("tool_error" if result.get("isError") else "ok", response_bytes=size)
            return result
        entry, tool = self._tool_for_call(scope, call, params.name)
        progress = ctx.session.report_progress if ctx.meta and "progress_token" in ctx.meta else None

        param_headers = self._param_headers(entry, tool, params.arguments)

        async def operation() -> types.CallToolResult:
            upstream = await self._upstream_for(ctx, entry)
            return await upstream.call_tool(
                tool,
                params.arguments,
                progress,
                affinity=call.affinity_key,
                param_headers=param_headers,
                relay=servers_conf().fast_path,
            )

        with requesting(self._requester(ctx, scope, entry)):
            typed = await self._forward(call, entry, operation)
        if isinstance(typed, types.CallToolResult):
            if modern:
                # Stamped now rather than by the SDK afterwards, so that the record measures what is sent.
                typed.meta = self._stamped_meta(typed.meta)
            call.finish("tool_error" if typed.is_error else "ok", result=typed)
            return typed
        return typed.as_tool_error()

    async def call_tool_json(self, scope: RequestScope, call: CallRecorder, params: dict[str, Any]) -> bytes:
        """A stateless-era tools/call without the SDK's dispatch (servers.gateway.stateless): the result as JSON.

        Same resolution, breaker, gate and call record as `call_tool`; raises MCPError for a JSON-RPC error.
        """
        result = await self._call_tool_dict(scope, call, params)
        # UTF-8 as the SDK writes it (not \u escapes): the same bytes, and so the same response_bytes.
        body = json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode()
        call.finish("tool_error" if result.get("isError") else "ok", response_bytes=len(body))
        return body

    async def _call_tool_dict(self, scope: RequestScope, call: CallRecorder, params: dict[str, Any]) -> dict[str, Any]:
        """A 2026-era client's tools/call (`params` as it sent them) passed through (servers.gateway.rounds)."""
        entry, tool = self._tool_for_call(scope, call, params["name"])
        arguments = params.get("arguments")
        param_headers = self._param_headers(entry, tool, arguments)
        request: dict[str, Any] = {"name": tool}
        if arguments is not None:
            request["arguments"] = arguments
        request = self._rounds_request(scope, call, "tools/call", params, request)

        async def operation() -> dict[str, Any]:
            return await self._request_json(scope, call, entry, "tools/call", params, request, param_headers)

        result = await self._forward(call, entry, operation)
        if isinstance(result, ForwardFailure):
            result = result.as_tool_error().model_dump(mode="json", by_alias=True, exclude_none=True)
        elif result.get("resultType") == rounds.INPUT_REQUIRED:
            result = rounds.client_result(scope, "tools/call", params, result)
        elif result.get("resultType") == tasks.TASK_RESULT:
            result = tasks.client_task(scope, entry, tool, result)
        result["_meta"] = self._stamped_meta(result.get("_meta"))
        return result

    async def _request_json(
        self,
        scope: RequestScope,
        call: CallRecorder,
        entry: ServerEntry,
        method: str,
        params: dict[str, Any],
        request: dict[str, Any],
        param_headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A pass-through request on the server's main connection: a handshake-era server's questions
        during it are put to the client as rounds (servers.gateway.held_calls)."""
        upstream = self._upstream(entry)
        upstreams = self.upstreams
        assert upstreams is not None  # else `_upstream` raised

        async def send(body: dict[str, Any]) -> dict[str, Any]:
            return await upstream.request_json(method, body, param_headers, affinity=call.affinity_key)

        modern = upstream.protocol_version in MODERN_PROTOCOL_VERSIONS
        return await self.held_calls.request(scope, entry.slug, params, request, modern, send, upstreams.start_soon)

    @staticmethod
    def _param_headers(entry: ServerEntry, tool: str, arguments: dict[str, Any] | None) -> dict[str, str] | None:
        """The `Mcp-Param-*` headers of a call to a 2026-07-28 server whose tool declares some (x-mcp-header)."""
        header_map = entry.param_header_maps.get(tool)
        return mcp_param_headers(header_map, arguments or {}) if header_map else None

    @staticmethod
    def _rounds_request(
        scope: RequestScope, call: CallRecorder, method: str, params: dict[str, Any], request: dict[str, Any]
    ) -> dict[str, Any]:
        """`rounds.upstream_params`, a refused `requestState` recorded."""
        try:
            return rounds.upstream_params(scope, method, params, request)
        except MCPError as exc:
            call.finish("protocol_error", error="invalid requestState", code=exc.code)
            raise

    def _stamped_meta(self, meta: Any) -> Any:
        """A 2026-era result's `_meta` with the hub's serverInfo stamp, by the SDK's rule: a stamp the
        handler (here the upstream) set wins; a missing or null one is filled in."""
        if meta is None:
            return {SERVER_INFO_META_KEY: self._server_info}
        if isinstance(meta, dict) and meta.get(SERVER_INFO_META_KEY) is None:
            return {**meta, SERVER_INFO_META_KEY: self._server_info}
        return meta

    # --- discovery and tasks (servers.gateway.tasks) -----------------------------------------------

    async def discover(self, ctx: Ctx, params: types.RequestParams | None) -> types.DiscoverResult:
        return tasks.discover_result(self.server, ctx.protocol_version, self._visible(RequestScope.of(ctx)))

    async def task_request(self, ctx: Ctx, params: types.GetTaskRequestParams) -> dict[str, Any]:
        """tasks/get, tasks/update or tasks/cancel, forwarded to the server that owns the task.

        A tasks/get that first sees the task ended records its final status (once, as `task:<tool>`).
        """
        scope = RequestScope.of(ctx)
        ref = tasks.checked_request(ctx, scope, params.task_id)
        entry = next((entry for entry in self._visible(scope) if entry.id == ref.server_id), None)
        if entry is None:
            raise tasks.unknown_task(params.task_id)
        call = CallRecorder.of(ctx, scope, f"task:{ref.tool}", age=time.time() - ref.created)
        call.server(entry, f"task:{ref.tool}")
        request, headers = tasks.upstream_request(ref, ctx.params or {})

        async def operation() -> dict[str, Any]:
            return await self._upstream(entry).request_json(ctx.method, request, headers, affinity=call.affinity_key)

        result = await self._forward(call, entry, operation)
        if isinstance(result, ForwardFailure):
            raise MCPError(types.INTERNAL_ERROR, result.message)
        if "taskId" in result:
            result["taskId"] = params.task_id
        ended = tasks.final_outcome(result) if ctx.method == "tasks/get" else None
        if ended is not None and await tasks.first_sight(params.task_id):
            outcome, error, code = ended
            size = len(json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode())
            call.finish(outcome, error=error, code=code, response_bytes=size)
        return result

    # --- resources and prompts ------------------------------------------------------------------

    async def list_resources(self, ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        scope = RequestScope.of(ctx)
        resources = []
        for entry in self._visible(scope):
            for resource in entry.resources:
                if scope.slug is not None:
                    _slug, original = split_uri(resource["uri"]) or ("", resource["uri"])
                    resource = {**resource, "uri": original, "name": resource["name"].split("/", 1)[-1]}
                resources.append(types.Resource.model_validate(resource))
        return types.ListResourcesResult(resources=resources)

    async def read_resource(self, ctx: Ctx, params: types.ReadResourceRequestParams) -> Any:
        scope = RequestScope.of(ctx)
        uri = str(params.uri)
        if scope.slug is not None:
            slug, original = scope.slug, uri
        else:
            slug, original = split_uri(uri) or ("", "")
        call = CallRecorder.of(ctx, scope, f"resource:{uri}")
        entry = self.snapshot.servers.get(slug)
        if entry is None or not scope.token.allows(entry.id):
            call.finish("denied" if entry else "protocol_error", error="unknown resource", code=types.INVALID_PARAMS)
            raise MCPError(types.INVALID_PARAMS, f"Unknown resource: {uri}")
        call.server(entry, f"resource:{original}")
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS and rounds.takes_rounds(ctx.params):
            raw = dict(ctx.params or {})
            with logging_to(self.log_levels.route(ctx, scope.slug is None)):
                result = await self._pass_through(scope, call, entry, "resources/read", raw, {"uri": original})
            if scope.slug is None and result.get("resultType") != rounds.INPUT_REQUIRED:
                for content in result.get("contents") or ():
                    if isinstance(content, dict) and content.get("uri") == original:
                        content["uri"] = uri
            return result

        typed = await self._ask(
            ctx, scope, call, entry, lambda upstream: upstream.read_resource(original, affinity=call.affinity_key)
        )
        if scope.slug is None:
            for content in typed.contents:
                content.uri = uri if str(content.uri) == original else content.uri
        return typed

    async def list_prompts(self, ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        scope = RequestScope.of(ctx)
        prompts = []
        for entry in self._visible(scope):
            for prompt in entry.prompts:
                name = prompt["original"] if scope.slug is not None else prompt["name"]
                fields = {k: v for k, v in prompt.items() if k not in ("name", "original")}
                prompts.append(types.Prompt.model_validate({**fields, "name": name}))
        return types.ListPromptsResult(prompts=prompts)

    async def get_prompt(self, ctx: Ctx, params: types.GetPromptRequestParams) -> Any:
        scope = RequestScope.of(ctx)
        call = CallRecorder.of(ctx, scope, f"prompt:{params.name}")
        found = self._find_prompt(scope, params.name)
        if found is None:
            call.finish("protocol_error", error="unknown prompt", code=types.INVALID_PARAMS)
            raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {params.name}")
        entry, original = found
        call.server(entry, f"prompt:{original}")
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS and rounds.takes_rounds(ctx.params):
            request: dict[str, Any] = {"name": original}
            if params.arguments is not None:
                request["arguments"] = params.arguments
            with logging_to(self.log_levels.route(ctx, scope.slug is None)):
                return await self._pass_through(scope, call, entry, "prompts/get", dict(ctx.params or {}), request)

        return await self._ask(
            ctx,
            scope,
            call,
            entry,
            lambda upstream: upstream.get_prompt(original, params.arguments, affinity=call.affinity_key),
        )

    async def _pass_through(
        self,
        scope: RequestScope,
        call: CallRecorder,
        entry: ServerEntry,
        method: str,
        params: dict[str, Any],
        request: dict[str, Any],
    ) -> dict[str, Any]:
        """A 2026-era client's prompts/get or resources/read passed through as JSON, rounds and caching hints
        included (servers.gateway.rounds); an upstream failure is -32603 naming the server."""
        request = self._rounds_request(scope, call, method, params, request)

        async def operation() -> dict[str, Any]:
            return await self._request_json(scope, call, entry, method, params, request)

        result = await self._forward(call, entry, operation)
        if isinstance(result, ForwardFailure):
            raise MCPError(types.INTERNAL_ERROR, result.message)
        result = rounds.client_result(scope, method, params, result)
        call.finish("ok", response_bytes=len(json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode()))
        return result

    def _find_prompt(self, scope: RequestScope, name: str) -> tuple[ServerEntry, str] | None:
        """The server and upstream name of a prompt as named at this endpoint."""
        for entry in self._visible(scope):
            for prompt in entry.prompts:
                if (prompt["original"] if scope.slug is not None else prompt["name"]) == name:
                    return entry, prompt["original"]
        return None

    def _find_resource(self, scope: RequestScope, uri: str) -> tuple[ServerEntry, str] | None:
        """The server and upstream URI of a resource (or template) URI as named at this endpoint."""
        slug, original = (scope.slug, uri) if scope.slug is not None else (split_uri(uri) or ("", ""))
        entry = self.snapshot.servers.get(slug)
        return (entry, original) if entry is not None and scope.token.allows(entry.id) else None

    # --- completion, templates, subscriptions -------------------------------------------------------

    async def _send(
        self, ctx: Ctx, scope: RequestScope, entry: ServerEntry, what: str, request: Any, result: Any
    ) -> Any:
        """One other request to the server (recorded, under its breaker and gate); JSON-RPC errors pass through."""
        call = CallRecorder.of(ctx, scope, what)
        call.server(entry, what)
        return await self._ask(
            ctx, scope, call, entry, lambda upstream: upstream.send(request, result, affinity=call.affinity_key)
        )

    async def _ask(
        self,
        ctx: Ctx,
        scope: RequestScope,
        call: CallRecorder,
        entry: ServerEntry,
        request: Callable[[Upstream], Awaitable[T]],
    ) -> T:
        """`request` on the upstream this client's era uses, as this client (the server's own questions go to
        it), under the breaker and gate; recorded. An upstream failure is -32603 naming the server."""

        async def operation() -> T:
            return await request(await self._upstream_for(ctx, entry))

        with requesting(self._requester(ctx, scope, entry)):
            answer = await self._forward(call, entry, operation)
        if isinstance(answer, ForwardFailure):
            raise MCPError(types.INTERNAL_ERROR, answer.message)
        call.finish("ok", result=answer)
        return answer

    async def complete(self, ctx: Ctx, params: types.CompleteRequestParams) -> types.CompleteResult:
        scope = RequestScope.of(ctx)
        ref = params.ref
        if isinstance(ref, types.PromptReference):
            prompt = self._find_prompt(scope, ref.name)
            if prompt is None:
                raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {ref.name}")
            entry, name = prompt
            upstream_ref: types.PromptReference | types.ResourceTemplateReference
            upstream_ref = ref.model_copy(update={"name": name})
        else:
            template = self._find_resource(scope, ref.uri)
            if template is None:
                raise MCPError(types.INVALID_PARAMS, f"Unknown resource template: {ref.uri}")
            entry, uri = template
            upstream_ref = ref.model_copy(update={"uri": uri})
        request = types.CompleteRequest(params=params.model_copy(update={"ref": upstream_ref}))
        result: types.CompleteResult = await self._send(
            ctx, scope, entry, f"completion:{ref.type}", request, types.CompleteResult
        )
        return result

    async def list_resource_templates(
        self, ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        """Listed live from the visible servers that offer resources (each bounded; a failing one is left out)."""
        scope = RequestScope.of(ctx)
        templates: list[types.ResourceTemplate] = []
        for entry in self._visible(scope):
            if entry.down or self.upstreams is None:
                continue
            try:
                with anyio.fail_after(entry.config.call_timeout + 5):
                    upstream = await self._upstream_for(ctx, entry)
                    page = await upstream.send(types.ListResourceTemplatesRequest(), types.ListResourceTemplatesResult)
            except (UpstreamError, MCPError, TimeoutError) as exc:
                logger.info("resources/templates/list on %s failed: %s", entry.slug, exc)
                continue
            for template in page.resource_templates:
                if scope.slug is None:
                    template = template.model_copy(
                        update={
                            "uri_template": public_uri(entry.slug, template.uri_template),
                            "name": f"{entry.slug}/{template.name}",
                        }
                    )
                templates.append(template)
        return types.ListResourceTemplatesResult(resource_templates=templates)

    async def subscribe_resource(self, ctx: Ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
        scope = RequestScope.of(ctx)
        uri = str(params.uri)
        found = self._find_resource(scope, uri)
        session_id = ctx.request.headers.get("mcp-session-id") if ctx.request is not None else None
        if session_id is None:  # updates go to a session: 2026-07-28 clients use subscriptions/listen
            raise MCPError(types.INVALID_REQUEST, "resources/subscribe needs a session (Mcp-Session-Id)")
        if found is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown resource: {uri}")
        entry, original = found
        pool = await self._upstream_for(ctx, entry)
        if pool.protocol_version not in MODERN_PROTOCOL_VERSIONS:  # a 2026-07-28 server has no such request
            # Sent here so that the server's own answer (an unknown resource...) reaches the client; the watch
            # then keeps it subscribed on every connection, across reconnects (servers.upstream.watch; idempotent).
            request = types.SubscribeRequest(params=types.SubscribeRequestParams(uri=original))
            await self._send(ctx, scope, entry, f"subscribe:{original}", request, types.EmptyResult)
        try:
            self.subscriptions.add(entry.id, original, session_id, ctx.session, uri, pool.watch)
        except OverflowError as exc:
            raise MCPError(types.INTERNAL_ERROR, str(exc)) from exc
        return types.EmptyResult()

    async def unsubscribe_resource(self, ctx: Ctx, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        scope = RequestScope.of(ctx)
        uri = str(params.uri)
        found = self._find_resource(scope, uri)
        session_id = ctx.request.headers.get("mcp-session-id") if ctx.request is not None else None
        if found is None or session_id is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown resource: {uri}")
        entry, original = found
        if not self.subscriptions.remove(entry.id, original, session_id):
            return types.EmptyResult()
        if (await self._upstream_for(ctx, entry)).protocol_version not in MODERN_PROTOCOL_VERSIONS:
            # Sent now, so that no update follows the answer; the watch sends it too (idempotent).
            request = types.UnsubscribeRequest(params=types.UnsubscribeRequestParams(uri=original))
            await self._send(ctx, scope, entry, f"unsubscribe:{original}", request, types.EmptyResult)
        return types.EmptyResult()

    def _on_upstream_resource_updated(self, server_id: int, uri: str) -> None:
        # Called from the upstream's message handler: fan out in the background.
        if self.upstreams is not None:
            self.upstreams.start_soon(self.subscriptions.updated, server_id, uri)
            self.upstreams.start_soon(self._listen.publish, Change(server_id, ResourceUpdated(uri)))

    @contextmanager
    def _listen_audience(self, ctx: Ctx, requested: types.SubscriptionFilter) -> Iterator[Audience]:
        """What a listen stream hears (servers.gateway.listen); its resources watched upstream while it is open.

        Honored: every list kind asked for, and the resources of servers this scope sees.
        """
        scope = RequestScope.of(ctx)
        uris: dict[tuple[int, str], str] = {}
        watched = []
        for uri in requested.resource_subscriptions or ():
            found = self._find_resource(scope, uri)
            if found is not None and self.upstreams is not None:
                entry, original = found
                uris[(entry.id, original)] = uri
                watched.append((self.upstreams.pool(entry.config).watch, original))
        honored = types.SubscriptionFilter(
            tools_list_changed=requested.tools_list_changed or None,
            prompts_list_changed=requested.prompts_list_changed or None,
            resources_list_changed=requested.resources_list_changed or None,
            resource_subscriptions=list(uris.values()) or None,
        )
        for watch, original in watched:
            watch.add(original)
        try:
            yield Audience(honored, lambda server_id: self._sees(scope, server_id), uris)
        finally:
            for watch, original in watched:
                watch.discard(original)

    # --- what the upstreams ask of the client, and logging ----------------------------------------

    def _requester(self, ctx: Ctx, scope: RequestScope, entry: ServerEntry) -> Requester:
        """The downstream client behind this request, as the upstream layer relays requests and logs to it."""
        return Requester(
            ctx.session,
            ctx.request_id,
            server=entry.slug,
            label=scope.slug is None,
            log=self.log_levels.route(ctx, scope.slug is None),
            owner=scope.token.id,
            close_stream=ctx.close_sse_stream,
        )

    async def roots_changed(self, ctx: Ctx, params: types.NotificationParams | None) -> None:
        """A client's roots changed: tell the live upstreams it can see (they will ask for roots again)."""
        scope = RequestScope.of(ctx)
        for entry in self._visible(scope):
            for pool in self.upstreams.running_pools(entry.id) if self.upstreams is not None else ():
                for session in pool.sessions():
                    await session.roots_changed()

    async def set_logging_level(self, ctx: Ctx, params: types.SetLevelRequestParams) -> types.EmptyResult:
        """Remember the client's level; set the visible handshake-era upstreams to the most verbose one asked for."""
        scope = RequestScope.of(ctx)
        self.log_levels.set(ctx, params.level)
        for entry in self._visible(scope):
            if self.upstreams is None:
                break
            try:
                with anyio.fail_after(entry.config.call_timeout + 5):
                    sessions = (await self._upstream_for(ctx, entry)).sessions()
                    for session in sessions:
                        await session.refresh_log_level()
            except (UpstreamError, MCPError, TimeoutError) as exc:  # best effort: the server keeps its level
                logger.info("logging/setLevel on %s failed: %s", entry.slug, exc)
        return types.EmptyResult()

    # --- forwarding ---------------------------------------------------------------------------

    def _upstream(self, entry: ServerEntry) -> Upstream:
        """The server's main connection (2026-era tools/call fast path: `call_tool_json`)."""
        if self.upstreams is None:
            raise UpstreamError(entry.slug, "the hub is shutting down")
        return self.upstreams.pool(entry.config)

    async def _upstream_for(self, ctx: Ctx, entry: ServerEntry) -> UpstreamPool:
        """The connection for this request's era: a handshake-era client of a dual-era server gets a
        handshake-era one (server-to-client requests, subscriptions; servers.upstream.eras)."""
        if self.upstreams is None:
            raise UpstreamError(entry.slug, "the hub is shutting down")
        era = "stateless" if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS else "handshake"
        return await self.upstreams.pool_for(entry.config, era)

    def _gate(self, entry: ServerEntry) -> ServerGate:
        gate = self._gates.get(entry.id)
        if gate is None or gate.limit != entry.config.max_concurrent_calls:
            gate = ServerGate(entry.config.max_concurrent_calls, servers_conf().max_queued_calls)
            self._gates[entry.id] = gate
        return gate

    async def _forward(
        self, call: CallRecorder, entry: ServerEntry, operation: Callable[[], Awaitable[T]]
    ) -> T | ForwardFailure:
        """Run one upstream request under the circuit breaker and the server's gate; never raises upstream errors."""
        admission = self.breaker.admit(entry.id, entry.down, entry.status_changed_at)
        if not admission.allowed:
            failure = ForwardFailure(
                f"{entry.slug}: server is down (failing health checks); calls fail fast, "
                f"next trial call in {admission.retry_in:.0f} s"
            )
            call.finish("upstream_down", error=failure.message)
            return failure
        reachable: bool | None = None  # what this call learned of the upstream (for a breaker trial)
        try:
            async with self._gate(entry).slot(entry.slug, entry.config.call_timeout):
                result = await operation()
            reachable = True
            return result
        except UpstreamError as exc:
            reachable = False
            call.finish(exc.outcome, error=str(exc))
            return ForwardFailure(str(exc))
        except MCPError as exc:
            reachable = True  # the server answered, with an error
            call.finish("protocol_error", error=exc.message, code=exc.code)
            raise
        except anyio.get_cancelled_exc_class():
            call.finish("protocol_error", error="cancelled by the client")
            raise
        finally:
            if admission.trial:
                self.breaker.settle(entry.id, reachable)
                if reachable and self.upstreams is not None:
                    self.upstreams.start_soon(request_health_check, entry.id)


@dataclass(frozen=True)
class ForwardFailure:
    """An upstream failure, turned into a tool error the client can show (never a hang, never a 500)."""

    message: str

    def as_tool_error(self) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text=self.message)], is_error=True)
