"""One supervised connection to one upstream MCP server.

A single supervisor task owns the SDK `Client`: it enters and exits it in the
same task (the SDK's task groups require that), reconnects with exponential
backoff after a crash, stops an idle stdio process, and reconnects when the
configuration changes. Calls come from any task of the same event loop and
share the connection; every wait is bounded, so a silent or dead server gives
an error, never a hang.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import aiohttp
import anyio
import anyio.abc
import mcp_types as types
from mcp import Client, MCPError
from mcp.shared.subscriptions import (
    SUBSCRIPTION_ID_META_KEY,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)
from mcp_types import CLIENT_CAPABILITIES_META_KEY, CONNECTION_CLOSED, REQUEST_TIMEOUT
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel

from servers.upstream import eras, log_routes, relay
from servers.upstream.config import UpstreamConfig
from servers.upstream.errors import UpstreamCrashed, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from servers.upstream.http import HttpLink, http_transport
from servers.upstream.interface import ProgressCallback, Upstream
from servers.upstream.raw import handshake_request, send_raw
from servers.upstream.requester import CURRENT, ClientRelay
from servers.upstream.stdio import ProcessInfo, stdio_transport
from servers.upstream.watch import ResourceWatch

logger = logging.getLogger(__name__)

BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0
# A connection that lived this long was healthy: the next crash starts the backoff over.
HEALTHY_AFTER = 30.0
POLL_INTERVAL = 0.25
# How long a new connection waits for `subscriptions/listen` to be acknowledged before serving calls.
LISTEN_ACK_WAIT = 2.0
# How long a new handshake-era connection waits for its `logging/setLevel` answer before serving calls.
SET_LEVEL_WAIT = 2.0

# A list change, as a listen-stream event and as a handshake-era notification: the kind the hooks are told.
LIST_KINDS: dict[type, str] = {
    ToolsListChanged: "tools",
    PromptsListChanged: "prompts",
    ResourcesListChanged: "resources",
    types.ToolListChangedNotification: "tools",
    types.PromptListChangedNotification: "prompts",
    types.ResourceListChangedNotification: "resources",
}

T = TypeVar("T")
ResultT = TypeVar("ResultT", bound=BaseModel)


def _noop(*args: Any) -> None:
    return None


@dataclass
class SessionHooks:
    """How the upstream layer reports what it learns; the owner decides what to persist."""

    on_era: Callable[[int, str, str], None] = _noop  # server id, era, protocol version
    on_stderr: Callable[[int, list[str]], None] = _noop  # server id, lines
    on_tools_changed: Callable[[int], None] = _noop  # server id (the main connection's tool list changes only)
    on_restart: Callable[[int, str], None] = _noop  # server id, reason
    on_scale: Callable[[int, int, int, str], None] = _noop  # server id, from, to instances, reason (pools)
    on_resource_updated: Callable[[int, str], None] = _noop  # server id, uri (a watched resource)
    # server id, "tools" | "prompts" | "resources", variant ("" for the main connection; a variant's stdio
    # connection is a process of its own, with lists of its own)
    on_list_changed: Callable[[int, str, str], None] = _noop


@dataclass
class SessionStats:
    restarts: int = 0
    connected_since: float | None = None
    last_used: float = field(default_factory=time.monotonic)
    last_error: str = ""
    in_flight: int = 0


def era_of(protocol_version: str) -> str:
    return "stateless" if protocol_version in MODERN_PROTOCOL_VERSIONS else "handshake"


def idle_expired(config: UpstreamConfig, in_flight: int, last_used: float) -> bool:
    """A stdio server with nothing in flight, unused for its idle timeout: its process(es) may stop."""
    idle = config.idle_timeout
    return bool(config.transport == "stdio" and idle and in_flight == 0 and time.monotonic() - last_used > idle)


def describe(exc: BaseException) -> str:
    """A one-line reason, digging into exception groups (the SDK raises those from its task groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


def _on_listen_stream(message: Any) -> bool:
    meta = getattr(getattr(message, "params", None), "meta", None)
    return isinstance(meta, dict) and SUBSCRIPTION_ID_META_KEY in meta


class UpstreamSession(Upstream):
    """One connection; `affinity` is accepted and ignored (it picks among a pool's instances)."""

    def __init__(
        self, config: UpstreamConfig, hooks: SessionHooks | None = None, watch: ResourceWatch | None = None
    ) -> None:
        self.config = config
        self.hooks = hooks or SessionHooks()
        self.watch = watch or ResourceWatch()
        self.stats = SessionStats()
        self.process = ProcessInfo()
        self.state = "connecting"  # connecting | connected | backoff | stopped
        self._client: Client | None = None
        self._attempt_done = anyio.Event()
        self._wake = anyio.Event()
        self._stopping = False
        self._retiring = False
        self._reconnect_reason = ""
        self._reconnect_now = False
        self._http = HttpLink()
        # Server-to-client requests go to the downstream client whose request caused them.
        self.relay = ClientRelay(config.slug, lambda: self.config.call_timeout)
        self._listen_unacknowledged_logged = False
        self._log_level: types.LoggingLevel | None = None  # what `logging/setLevel` set this connection to
        self._log_level_lock = anyio.Lock()
        self.refused = False  # a variant whose server refused its era: it stops, its pool's owner falls back

    # --- supervisor ------------------------------------------------------------------

    async def run(self) -> None:
        """The supervisor loop: connect, serve until the connection ends, back off, repeat."""
        backoff = BACKOFF_MIN
        self.relay.detach()
        try:
            while not self._stopping:
                self.state = "connecting"
                self._reconnect_reason = ""
                self._wake = anyio.Event()
                started = time.monotonic()
                try:
                    # The connect deadline is lifted once connected. One scope around the whole
                    # client: a scope closed while the SDK's task groups still run is an anyio error.
                    with anyio.CancelScope(deadline=anyio.current_time() + self.config.connect_timeout) as scope:
                        async with self._new_client() as client, anyio.create_task_group() as listeners:
                            scope.deadline = math.inf  # connected: optional start-up steps never gate it
                            if era_of(client.protocol_version) == "stateless":
                                if self._announces_changes(client):
                                    await self._start_listening(listeners, client)
                            elif self._takes_subscriptions(client):
                                await self._start_subscribing(listeners, client)
                            self._log_level = None  # a new connection has the server's default level
                            with anyio.move_on_after(min(SET_LEVEL_WAIT, self.config.call_timeout)):
                                await self._apply_log_level(client)
                            self._on_connected(client)
                            await self._serve_until_done()
                            listeners.cancel_scope.cancel()
                    if scope.cancelled_caught:
                        raise TimeoutError(f"no connection within {self.config.connect_timeout:g} s")
                except Exception as exc:
                    self.stats.last_error = describe(exc)
                    logger.warning("upstream %s: %s", self.config.slug, self.stats.last_error)
                    if self.config.variant and eras.refuses_handshake(exc):
                        self.refused = True  # not an outage: retrying would be refused again
                finally:
                    self._client = None
                    self.stats.connected_since = None
                    self._finish_attempt()
                if self._must_end() or self.refused:
                    break
                reason = self._reconnect_reason or self.stats.last_error or "connection ended"
                self.stats.restarts += 1
                self.hooks.on_restart(self.config.id, reason)
                if time.monotonic() - started > HEALTHY_AFTER:
                    backoff = BACKOFF_MIN
                if self._reconnect_now:
                    self._reconnect_now = False
                    continue
                self.state = "backoff"
                with anyio.move_on_after(backoff):
                    await self._wake.wait()  # stop() cuts the backoff short
                backoff = min(backoff * 2, BACKOFF_MAX)
        finally:
            self.state = "stopped"
            self._finish_attempt()

    def _new_client(self) -> AbstractAsyncContextManager[Client]:
        config = self.config
        if config.transport == "stdio":
            self.process = ProcessInfo()
            transport: Any = stdio_transport(config, self.process, lambda lines: self.hooks.on_stderr(config.id, lines))
        else:
            self._http = HttpLink()
            transport = http_transport(config, self._http)
        # A remembered handshake era skips the discover probe (it has a fixed 10 s timeout of its own,
        # which a handshake-only server may make us wait out). Stateless servers answer the probe at
        # once, and its result carries the capabilities we need (e.g. tools.listChanged).
        mode = "legacy" if config.era == "handshake" else "auto"
        return Client(
            transport,
            mode=mode,
            read_timeout_seconds=config.call_timeout,
            message_handler=self._on_message,
            cache=None,  # the hub caches tool lists itself; a proxy must not serve stale lists
            **self.relay.client_options(),
        )

    def _on_connected(self, client: Client) -> None:
        self._client = client
        self.state = "connected"
        self.stats.connected_since = time.monotonic()
        self.stats.last_error = ""
        version = client.protocol_version
        era = era_of(version)
        # A variant's era is pinned, not the server's: never recorded.
        if not self.config.variant and (era != self.config.era or version != self.config.protocol_version):
            self.hooks.on_era(self.config.id, era, version)
        self._finish_attempt()

    async def _serve_until_done(self) -> None:
        while True:
            with anyio.move_on_after(POLL_INTERVAL):
                await self._wake.wait()
            if self._stopping or self._reconnect_reason:
                return
            if self.process.exited.is_set() and self.config.transport == "stdio":
                self._reconnect_reason = f"process exited (code {self.process.returncode})"
                return
            if self._idle_expired() or (self._retiring and self.stats.in_flight == 0):
                return

    def _idle_expired(self) -> bool:
        return idle_expired(self.config, self.stats.in_flight, self.stats.last_used)

    def _must_end(self) -> bool:
        """Stopped, idle or retired: the supervisor ends instead of reconnecting."""
        return self._stopping or self._idle_expired() or self._retiring

    def _finish_attempt(self) -> None:
        self._attempt_done.set()
        self._attempt_done = anyio.Event()

    @staticmethod
    def _announces_changes(client: Client) -> bool:
        caps = client.server_capabilities
        return any(
            (
                caps.tools and caps.tools.list_changed,
                caps.prompts and caps.prompts.list_changed,
                caps.resources and (caps.resources.list_changed or caps.resources.subscribe),
            )
        )

    @staticmethod
    def _takes_subscriptions(client: Client) -> bool:
        resources = client.server_capabilities.resources
        return bool(resources and resources.subscribe)

    async def _start_listening(self, listeners: anyio.abc.TaskGroup, client: Client) -> None:
        """Subscribe to list changes and watched resources, waiting a little for the acknowledgement, never for long.

        Waiting lets a change made by the first call reach us; not waiting longer keeps a server
        that announces `tools.listChanged` but never acknowledges `subscriptions/listen` usable
        (seen in the wild): its calls work, its list is refreshed by the scheduled discovery.
        """
        acknowledged = anyio.Event()
        listeners.start_soon(self._listen_for_changes, client, acknowledged)
        with anyio.move_on_after(min(LISTEN_ACK_WAIT, self.config.connect_timeout)):
            await acknowledged.wait()
        if not acknowledged.is_set() and not self._listen_unacknowledged_logged:
            self._listen_unacknowledged_logged = True  # once per upstream, not once per reconnect
            logger.warning(
                "upstream %s: subscriptions/listen not acknowledged within %g s; calls go on, "
                "list changes are picked up by the scheduled discovery",
                self.config.slug,
                LISTEN_ACK_WAIT,
            )

    async def _listen_for_changes(self, client: Client, acknowledged: anyio.Event) -> None:
        """2026-07-28 servers announce changes only on a `subscriptions/listen` stream, whose filter is fixed:
        when the watched resources change, a stream with the new set opens before the old one closes."""
        streams: list[anyio.CancelScope] = []
        async with anyio.create_task_group() as group:
            while True:
                change = self.watch.next_change()
                try:
                    stream = await group.start(self._listen_once, client, self.watch.uris)
                except Exception:  # not acknowledged: logged by `_listen_once`
                    return
                acknowledged.set()
                for old in streams:
                    old.cancel()
                streams = [stream]
                await change.wait()

    async def _listen_once(
        self, client: Client, uris: frozenset[str], *, task_status: anyio.abc.TaskStatus[anyio.CancelScope]
    ) -> None:
        caps = client.server_capabilities
        with anyio.CancelScope() as scope:
            try:
                async with client.listen(
                    tools_list_changed=bool(caps.tools and caps.tools.list_changed),
                    prompts_list_changed=bool(caps.prompts and caps.prompts.list_changed),
                    resources_list_changed=bool(caps.resources and caps.resources.list_changed),
                    resource_subscriptions=sorted(uris) if self._takes_subscriptions(client) else (),
                ) as subscription:
                    task_status.started(scope)
                    async for event in subscription:
                        self._heard(event)
            except Exception as exc:
                # Not fatal: calls still work; lists are refreshed by the next discovery.
                logger.info("upstream %s: change subscription ended: %s", self.config.slug, describe(exc))

    async def _start_subscribing(self, listeners: anyio.abc.TaskGroup, client: Client) -> None:
        """Subscribe to the watched resources, waiting (a little) for that before serving calls."""
        subscribed = anyio.Event()
        listeners.start_soon(self._keep_subscribed, client, subscribed)
        with anyio.move_on_after(min(LISTEN_ACK_WAIT, self.config.connect_timeout)):
            await subscribed.wait()

    async def _keep_subscribed(self, client: Client, subscribed: anyio.Event) -> None:
        """Handshake era: `resources/subscribe` each watched resource on this connection (again after a
        reconnect: a new connection starts with none), `resources/unsubscribe` the ones no longer watched."""
        applied: set[str] = set()
        while True:
            change = self.watch.next_change()
            wanted = self.watch.uris
            for uri in sorted(wanted - applied):
                if await self._send_subscription(
                    client, types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri))
                ):
                    applied.add(uri)
            for uri in sorted(applied - wanted):
                applied.discard(uri)
                params = types.UnsubscribeRequestParams(uri=uri)
                await self._send_subscription(client, types.UnsubscribeRequest(params=params))
            subscribed.set()
            await change.wait()

    async def _send_subscription(self, client: Client, request: types.ClientRequest) -> bool:
        try:
            with anyio.fail_after(self.config.call_timeout + 5):
                await client.session.send_request(request, types.EmptyResult)
        except Exception as exc:  # the server refused it or is going away: the next change tries again
            logger.info("upstream %s: %s failed: %s", self.config.slug, request.method, describe(exc))
            return False
        return True

    def _heard(self, event: ServerEvent | types.ServerNotification) -> None:
        """A change the server announced, on a listen stream (an event) or as a handshake-era notification."""
        if isinstance(event, ResourceUpdated | types.ResourceUpdatedNotification):
            uri = event.uri if isinstance(event, ResourceUpdated) else str(event.params.uri)
            self.hooks.on_resource_updated(self.config.id, uri)
            return
        kind = LIST_KINDS.get(type(event))
        if kind is None:
            return
        self.hooks.on_list_changed(self.config.id, kind, self.config.variant)
        if kind == "tools" and not self.config.variant:
            self.hooks.on_tools_changed(self.config.id)

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, types.ElicitCompleteNotification):
            await self.relay.elicitation_complete(message.params.elicitation_id)
        elif not _on_listen_stream(message):  # those are heard through the subscription (the SDK tees them here)
            self._heard(message)

    def request_reconnect(self, reason: str, immediate: bool = False) -> None:
        """End the current connection; reconnect after the backoff, or at once when nothing is wrong upstream."""
        self._reconnect_reason = reason
        self._reconnect_now = immediate
        self._wake.set()

    def stop(self) -> None:
        """Stop now (hub shutdown); in-flight calls fail."""
        self._stopping = True
        self._wake.set()

    def retire(self) -> None:
        """Stop once the calls in flight are done (configuration changed: a new session takes over)."""
        self._retiring = True
        self._wake.set()

    @property
    def usable(self) -> bool:
        return self.state != "stopped" and not self._stopping and not self._retiring

    # --- calls -------------------------------------------------------------------------

    async def _connected_client(self) -> Client:
        """The live client; waits for a connection attempt in progress, fails fast during backoff."""
        if self._client is not None:
            return self._client
        if self.state in ("backoff", "stopped"):
            raise UpstreamUnavailable(self.config.slug, self.stats.last_error or "not connected")
        with anyio.move_on_after(self.config.connect_timeout + 1):
            await self._attempt_done.wait()
        if self._client is None:
            reason = self.stats.last_error or f"no connection within {self.config.connect_timeout:g} s"
            raise UpstreamUnavailable(self.config.slug, reason)
        return self._client

    async def request(
        self, operation: Callable[[Client], Awaitable[T]], timeout: float | None = None, *, internal: bool = False
    ) -> T:
        """Run one request on the shared connection, mapping every failure to an UpstreamError.

        `internal`: the hub's own request (a listing, a ping), carrying nothing of any client's.
        """
        limit = timeout or self.config.call_timeout
        self.stats.in_flight += 1
        self.stats.last_used = time.monotonic()
        caller = self.relay.enter(internal)
        try:
            for attempt in (1, 2):
                client = await self._connected_client()
                try:
                    if not internal:
                        await self._apply_log_level(client)
                    # The SDK enforces the read timeout; this outer bound also covers writes and queues.
                    with anyio.fail_after(limit + 5):
                        return await operation(client)
                except MCPError as exc:
                    if exc.code == REQUEST_TIMEOUT:
                        raise UpstreamTimeout(self.config.slug, f"no answer within {limit:g} s") from exc
                    if self._http.lost and attempt == 1:
                        # The server restarted and refused our session id (404): it never ran the
                        # call, so re-initialize and send it once more.
                        self.request_reconnect("session not found", immediate=True)
                        await self._wait_for_new_client(client)
                        continue
                    if exc.code != CONNECTION_CLOSED:
                        raise
                    self.request_reconnect(describe(exc))
                    raise UpstreamCrashed(self.config.slug, f"connection lost during the call ({exc.message})") from exc
                except TimeoutError as exc:
                    raise UpstreamTimeout(self.config.slug, f"no answer within {limit:g} s") from exc
                except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
                    self.request_reconnect(describe(exc))
                    raise UpstreamCrashed(self.config.slug, "connection lost during the call") from exc
            raise UpstreamUnavailable(self.config.slug, "the session could not be re-established")
        finally:
            self.relay.leave(caller, internal)
            self.stats.in_flight -= 1
            self.stats.last_used = time.monotonic()

    async def _wait_for_new_client(self, old: Client) -> None:
        with anyio.move_on_after(self.config.connect_timeout + 1):
            while self._client is None or self._client is old:
                if self.state == "stopped":
                    return
                await anyio.sleep(0.01)

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | None,
        progress_callback: ProgressCallback | None = None,
        timeout: float | None = None,
        *,
        affinity: str | None = None,
        param_headers: Mapping[str, str] | None = None,
        relay: bool = False,
    ) -> types.CallToolResult:
        """A tools/call through the SDK client, typed. With `relay`, to a 2026-07-28 server over Streamable HTTP
        and without progress: one raw POST instead (servers.upstream.relay), a fifth of the SDK client's CPU;
        the server's `input_required` rounds, if any, then go on through the SDK's driver, which asks the client."""
        limit = timeout or self.config.call_timeout

        async def operation(client: Client) -> types.CallToolResult:
            http = self._http.relay
            if not relay or progress_callback or http is None or era_of(client.protocol_version) != "stateless":
                return await client.call_tool(
                    name,
                    arguments,
                    read_timeout_seconds=limit,
                    progress_callback=progress_callback,
                    meta=self._log_meta(client),
                )
            params: dict[str, Any] = {"name": name, "arguments": arguments or {}}
            requester = CURRENT.get()
            capabilities = requester.capabilities if requester is not None else None
            if capabilities is not None:  # the server asks only what the downstream client can answer
                dumped = capabilities.model_dump(mode="json", by_alias=True, exclude_none=True)
                params["_meta"] = {CLIENT_CAPABILITIES_META_KEY: dumped}
            raw = await self._relayed(http, client, "tools/call", params, param_headers or {}, limit)
            if raw.get("resultType") != "input_required":
                return types.CallToolResult.model_validate(raw)

            async def retry(responses: Any, state: str | None) -> Any:
                return await client.session.call_tool(
                    name,
                    arguments,
                    read_timeout_seconds=limit,
                    input_responses=responses,
                    request_state=state,
                    meta=self._log_meta(client),
                    allow_input_required=True,
                    allow_claimed=True,
                )

            result = await client._drive_input_required(types.InputRequiredResult.model_validate(raw), retry)
            return cast(types.CallToolResult, result)

        return await self.request(operation, limit)

    async def request_json(
        self,
        method: str,
        params: dict[str, Any],
        param_headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        *,
        affinity: str | None = None,
    ) -> dict[str, Any]:
        """A tools/call, prompts/get or resources/read with its result as JSON (see `Upstream.request_json`).

        To a stateless-era server: relayed raw over HTTP (servers.upstream.relay), or sent raw on the SDK
        session's stream (stdio), so an `input_required` result comes back as sent. To a handshake-era
        one: through the SDK client (multi-round fields dropped: that era has no such rounds).
        """
        limit = timeout or self.config.call_timeout
        route = log_routes.ROUTE.get()

        async def operation(client: Client) -> dict[str, Any]:
            if era_of(client.protocol_version) != "stateless":
                return await handshake_request(client, method, params, limit)
            http = self._http.relay  # set only while a Streamable HTTP transport runs
            if http is None:
                return await send_raw(client, method, log_routes.with_level(params, route), limit)
            return await self._relayed(http, client, method, params, param_headers or {}, limit)

        return await self.request(operation, limit)

    async def _relayed(
        self,
        http: aiohttp.ClientSession,
        client: Client,
        method: str,
        params: dict[str, Any],
        param_headers: Mapping[str, str],
        limit: float,
    ) -> dict[str, Any]:
        """One request to a 2026-07-28 server as a raw POST, with the caller's log level; its result as sent."""
        route = log_routes.ROUTE.get()
        sent = log_routes.with_level(params, route)
        on_log = functools.partial(route.relay, self.config.slug) if route is not None else None
        try:
            return await relay.post_request(
                http, self.config.url, client.protocol_version, method, sent, param_headers, limit, on_log
            )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # Nothing was sent: another instance may take the call.
            self.request_reconnect(describe(exc))
            raise UpstreamUnavailable(self.config.slug, describe(exc)) from exc
        except TimeoutError as exc:
            raise UpstreamTimeout(self.config.slug, f"no answer within {limit:g} s") from exc
        except (aiohttp.ClientError, relay.RelayError) as exc:
            self.request_reconnect(describe(exc))
            # A server gone mid-call is worded as the SDK client words it: one message whichever path.
            reason = "Connection closed" if isinstance(exc, aiohttp.ServerDisconnectedError) else describe(exc)
            raise UpstreamCrashed(self.config.slug, f"connection lost during the call ({reason})") from exc

    async def list_tools(self) -> list[types.Tool]:
        return await self._paginate(lambda cursor, c: c.list_tools(cursor=cursor), "tools")

    async def list_resources(self) -> list[types.Resource]:
        if not self._supports("resources"):
            return []
        return await self._paginate(lambda cursor, c: c.list_resources(cursor=cursor), "resources")

    async def list_prompts(self) -> list[types.Prompt]:
        if not self._supports("prompts"):
            return []
        return await self._paginate(lambda cursor, c: c.list_prompts(cursor=cursor), "prompts")

    async def read_resource(self, uri: str, *, affinity: str | None = None) -> types.ReadResourceResult:
        return await self.request(lambda c: c.read_resource(uri))

    async def get_prompt(
        self, name: str, arguments: dict[str, str] | None, *, affinity: str | None = None
    ) -> types.GetPromptResult:
        return await self.request(lambda c: c.get_prompt(name, arguments))

    async def send(
        self, request: types.ClientRequest, result_type: type[ResultT], *, affinity: str | None = None
    ) -> ResultT:
        """Any other request (completion, subscriptions, template listing): sent as is on the shared connection."""
        return await self.request(lambda c: c.session.send_request(request, result_type))

    async def roots_changed(self) -> None:
        """Pass a client's `notifications/roots/list_changed` on (handshake era; a live connection only)."""
        client = self._client
        if client is not None and era_of(client.protocol_version) == "handshake":
            with anyio.move_on_after(5):
                await client.session.send_notification(types.RootsListChangedNotification())

    async def refresh_log_level(self) -> None:
        """Set a live handshake-era connection to the level now wanted (after a client's `logging/setLevel`)."""
        client = self._client
        if client is not None:
            await self._apply_log_level(client)

    def _log_meta(self, client: Client) -> types.RequestParamsMeta | None:
        """`_meta` for a request to a 2026-07-28 upstream: the caller's log level (servers.upstream.log_routes)."""
        route = log_routes.ROUTE.get()
        if route is None or era_of(client.protocol_version) != "stateless":
            return None
        return cast(types.RequestParamsMeta, {types.LOG_LEVEL_META_KEY: route.upstream_level})

    def _wanted_log_level(self) -> types.LoggingLevel | None:
        """The hub-wide level and those of the calls in flight, the most verbose; None: leave the server's own.

        A call whose client wants every level (a handshake-era client that set none) needs "debug" only
        once the hub changed the server's level."""
        every: types.LoggingLevel | None = "debug" if self._log_level is not None else None
        levels = [route.level or every for route in self.relay.log_routes_in_flight()]
        return log_routes.most_verbose([log_routes.hub_level(), *levels])

    async def _apply_log_level(self, client: Client) -> None:
        """`logging/setLevel` on a handshake-era connection that offers logging, when the level wanted changed:
        the most verbose of the hub-wide level and those of the calls in flight (2026-07-28 has no such
        request: the level rides each request). Best effort: a refusal leaves the server's level as it is."""
        if era_of(client.protocol_version) != "handshake" or client.server_capabilities.logging is None:
            return
        wanted = self._wanted_log_level()
        if wanted is None or wanted == self._log_level:
            return
        async with self._log_level_lock:
            wanted = self._wanted_log_level()
            if wanted is None or wanted == self._log_level:
                return
            request = types.SetLevelRequest(params=types.SetLevelRequestParams(level=wanted))
            try:
                with anyio.fail_after(self.config.call_timeout):
                    await client.session.send_request(request, types.EmptyResult)
            except (MCPError, TimeoutError) as exc:
                logger.info("upstream %s: logging/setLevel %s failed: %s", self.config.slug, wanted, describe(exc))
                return
            self._log_level = wanted

    async def ping(self) -> None:
        """Prove the connection answers: `ping` in the handshake era, `server/discover` in the stateless one."""
        await self.request(
            lambda c: (
                c.session.send_discover(c.protocol_version)
                if era_of(c.protocol_version) == "stateless"
                else c.session.send_ping()  # Client.send_ping warns unless the client is mode='legacy'
            ),
            internal=True,
        )

    @property
    def protocol_version(self) -> str:
        return self._client.protocol_version if self._client is not None else self.config.protocol_version

    @property
    def server_capabilities(self) -> types.ServerCapabilities | None:
        return self._client.server_capabilities if self._client is not None else None

    def _supports(self, capability: str) -> bool:
        client = self._client
        return client is None or getattr(client.server_capabilities, capability, None) is not None

    async def _paginate(self, fetch: Callable[[str | None, Client], Awaitable[Any]], attribute: str) -> list[Any]:
        """Every item of a list, page after page: `fetch(cursor, client)` gets one page."""
        items: list[Any] = []
        cursor: str | None = None
        for _page in range(1000):  # a paginator that never ends must not hang discovery
            page = await self.request(functools.partial(fetch, cursor), internal=True)
            items.extend(getattr(page, attribute))
            cursor = page.next_cursor
            if not cursor:
                return items
        raise UpstreamError(self.config.slug, f"{attribute}/list did not end after 1000 pages")
