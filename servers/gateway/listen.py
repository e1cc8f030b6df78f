"""`subscriptions/listen` at the hub (2026-07-28): each stream hears only what its client may see.

The SDK's `ListenHandler` sends every event to every stream; the hub's events belong to one
server, and a stream hears those of the servers its token may use through its endpoint (all
of them on `/mcp`, one on `/mcp/<slug>/`), and the updates of the resources it named, under
the URI it named them by. Otherwise served as the SDK serves it: the acknowledgement first
(the honored filter), every frame tagged with the subscription id, a bounded backlog per
stream, and a graceful end (the listen result) on `close`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import anyio.streams.memory
import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import (
    SUBSCRIPTION_ID_META_KEY,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
    event_to_notification,
)

from servers.gateway.scope import Ctx

logger = logging.getLogger(__name__)

LIST_EVENTS: dict[str, ServerEvent] = {
    "tools": ToolsListChanged(),
    "prompts": PromptsListChanged(),
    "resources": ResourcesListChanged(),
}


@dataclass(frozen=True)
class Change:
    """Something a server changed: a list (by kind), or a resource (`ResourceUpdated` with the server's URI)."""

    server_id: int
    event: ServerEvent


@dataclass(frozen=True)
class Audience:
    """What one stream hears: the honored filter, the servers it sees, its resources by (server id, server's URI)."""

    honored: types.SubscriptionFilter
    sees: Callable[[int], bool]
    uris: Mapping[tuple[int, str], str]

    def event_for(self, change: Change) -> ServerEvent | None:
        event = change.event
        if isinstance(event, ResourceUpdated):
            uri = self.uris.get((change.server_id, event.uri))
            return ResourceUpdated(uri) if uri is not None else None
        wanted = {
            ToolsListChanged: self.honored.tools_list_changed,
            PromptsListChanged: self.honored.prompts_list_changed,
            ResourcesListChanged: self.honored.resources_list_changed,
        }[type(event)]
        return event if wanted and self.sees(change.server_id) else None


AudienceOf = Callable[[Ctx, types.SubscriptionFilter], AbstractContextManager[Audience]]


class HubListen:
    """Serves `subscriptions/listen`; `audience(ctx, filter)` resolves (and holds, while open) what a stream hears."""

    def __init__(self, audience: AudienceOf, *, max_streams: int = 1024, max_buffered_events: int = 1024) -> None:
        self._audience = audience
        self._max_streams = max_streams
        self._max_buffered = max_buffered_events
        self._streams: dict[anyio.streams.memory.MemoryObjectSendStream[ServerEvent], Audience] = {}

    async def __call__(
        self, ctx: Ctx, params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        subscription_id = ctx.request_id
        if subscription_id is None:
            raise MCPError(types.INVALID_REQUEST, "subscriptions/listen requires a request id")
        if len(self._streams) >= self._max_streams:
            raise MCPError(types.INTERNAL_ERROR, "Subscription limit reached")
        meta: dict[str, Any] = {SUBSCRIPTION_ID_META_KEY: subscription_id}
        send, receive = anyio.create_memory_object_stream[ServerEvent](self._max_buffered)
        with self._audience(ctx, params.notifications) as audience:
            # Registered before the acknowledgement is written: a change meanwhile is buffered, not lost.
            self._streams[send] = audience
            try:
                ack = types.SubscriptionsAcknowledgedNotificationParams(notifications=audience.honored, _meta=meta)
                await ctx.session.send_notification(
                    types.SubscriptionsAcknowledgedNotification(params=ack), related_request_id=subscription_id
                )
                async for event in receive:
                    await ctx.session.send_notification(
                        event_to_notification(event, meta), related_request_id=subscription_id
                    )
            finally:
                self._streams.pop(send, None)
                send.close()
                receive.close()
        return types.SubscriptionsListenResult(_meta=meta)

    async def publish(self, change: Change) -> None:
        """Queue the change on every stream that hears it (never waits for a client)."""
        for send, audience in list(self._streams.items()):
            event = audience.event_for(change)
            if event is None:
                continue
            try:
                send.send_nowait(event)
            except anyio.ClosedResourceError:
                pass
            except anyio.WouldBlock:  # the client stopped reading: end its stream (it re-listens and re-lists)
                logger.warning("listen stream backlog full; ending the stream")
                self._streams.pop(send, None)
                send.close()
        await anyio.lowlevel.checkpoint()

    def close(self) -> None:
        """End every stream gracefully (each sends its listen result after what it had queued)."""
        for send in list(self._streams):
            send.close()
