"""Resumable SSE streams for handshake-era clients (SEP-1699, 2025-11-25).

A POST stream opens with a priming event (an event id, no data) and a `retry` hint, so a
client whose stream is cut mid-call reconnects with `Last-Event-ID` (a GET on its session)
and receives what it missed, the result included. The hub cuts a client's stream itself
when the upstream cut the hub's (`Requester.close_stream`): the client sees the polling
the server asked for.

Each session keeps its own recent events in this process (sessions of that era live in the
web process that opened them). The SDK would give every session one shared store, but its
stream ids are request ids, which every session starts at 1: one session could then replay
another's results. So each new session gets a store of its own.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict

from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.streamable_http import (
    EventCallback,
    EventId,
    EventMessage,
    EventStore,
    StreamableHTTPServerTransport,
    StreamId,
)
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import JSONRPCMessage

EVENTS_PER_SESSION = 64  # older events are forgotten: a client resumes within seconds, not after 64 events
RETRY_MS = 1000  # how long a client waits before it resumes a cut stream


class SessionEvents(EventStore):
    """One session's latest SSE events, each under an id of this session's own."""

    def __init__(self, limit: int = EVENTS_PER_SESSION) -> None:
        self._limit = limit
        self._ids = itertools.count(1)
        self._events: OrderedDict[EventId, tuple[StreamId, JSONRPCMessage | None]] = OrderedDict()

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        event_id = str(next(self._ids))
        self._events[event_id] = (stream_id, message)
        if len(self._events) > self._limit:
            self._events.popitem(last=False)
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        """Send the events of `last_event_id`'s stream stored after it; None if that event is unknown (or forgotten)."""
        seen = self._events.get(last_event_id)
        if seen is None:
            return None
        stream = seen[0]
        later = list(self._events.items())
        start = next(i for i, (event_id, _) in enumerate(later) if event_id == last_event_id) + 1
        for event_id, (stream_id, message) in later[start:]:
            if stream_id == stream and message is not None:  # None: a priming event, nothing to resend
                await send_callback(EventMessage(message, event_id))
        return stream


class ResumableSessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager, each session with an event store of its own (give it `retry_interval`)."""

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        transport = super()._admit_session(requestor)
        if transport is not None:
            # mcp 2.3.0 has no per-session store option; the transport reads this attribute on every event.
            transport._event_store = SessionEvents()
        return transport
