"""`resources/subscribe` through the hub: who subscribed to which upstream resource, and where updates go.

An upstream connection is shared by every downstream client, so the hub subscribes
upstream once per resource (the resource is added to the connection's watch, which keeps
it subscribed across reconnects) and fans `notifications/resources/updated` out to the
downstream sessions that subscribed, under the URI each of them used (`/mcp` sees
`mcphub+<slug>:<uri>`, `/mcp/<slug>/` the original). The last unsubscribe
unsubscribes upstream. A session whose sends fail is forgotten.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anyio
from mcp.server.session import ServerSession

from servers.upstream.watch import ResourceWatch

logger = logging.getLogger(__name__)

MAX_SUBSCRIPTIONS = 100_000


@dataclass(frozen=True)
class Subscriber:
    session_id: str
    uri: str  # as this client named it


class Subscriptions:
    """(server id, upstream uri) -> the downstream subscribers, and their sessions."""

    def __init__(self) -> None:
        self._by_resource: dict[tuple[int, str], set[Subscriber]] = {}
        self._watches: dict[tuple[int, str], ResourceWatch] = {}  # the watch holding each resource upstream
        self._sessions: dict[str, ServerSession] = {}

    def add(
        self, server_id: int, uri: str, session_id: str, session: ServerSession, public_uri: str, watch: ResourceWatch
    ) -> None:
        if sum(len(s) for s in self._by_resource.values()) >= MAX_SUBSCRIPTIONS:
            raise OverflowError("too many resource subscriptions")
        key = (server_id, uri)
        self._by_resource.setdefault(key, set()).add(Subscriber(session_id, public_uri))
        self._sessions[session_id] = session
        if key not in self._watches:
            self._watches[key] = watch
            watch.add(uri)

    def remove(self, server_id: int, uri: str, session_id: str) -> bool:
        """Forget this session's subscription; True when the resource is no longer watched upstream at all."""
        subscribers = self._by_resource.get((server_id, uri), set())
        for subscriber in [s for s in subscribers if s.session_id == session_id]:
            subscribers.discard(subscriber)
        return not subscribers and self._drop((server_id, uri))

    def _drop(self, key: tuple[int, str]) -> bool:
        """Release the resource's watch; True when nobody else (a listen stream) watches it there."""
        self._by_resource.pop(key, None)
        watch = self._watches.pop(key, None)
        if watch is None:
            return False
        watch.discard(key[1])
        return key[1] not in watch.uris

    async def updated(self, server_id: int, uri: str) -> None:
        """Tell every subscriber of this resource (on its session's standalone stream)."""
        for subscriber in list(self._by_resource.get((server_id, uri), ())):
            session = self._sessions.get(subscriber.session_id)
            try:
                if session is None:
                    raise LookupError("session gone")
                with anyio.fail_after(5):
                    await session.send_resource_updated(subscriber.uri)
            except Exception as exc:  # that client has gone: forget it
                logger.info("resource update for session %s not delivered: %s", subscriber.session_id, exc)
                self._forget(subscriber.session_id)

    def _forget(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)
        for key, subscribers in list(self._by_resource.items()):
            subscribers.difference_update({s for s in subscribers if s.session_id == session_id})
            if not subscribers:
                self._drop(key)
