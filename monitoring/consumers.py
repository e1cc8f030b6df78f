"""``/ws/status/``: the dashboard's live feed (a snapshot, then batched deltas).

Producers publish to two Channels groups: "status" (``monitoring.status``, one
``status.changed`` per recorded change) and "calls" (``servers.gateway.recorder``, a
``calls.batch`` every 100 ms while calls flow). A :class:`Fanout` per web process (and event
loop) is the one member of both groups: it coalesces what arrives during a ``WINDOW`` (the
latest status per server, the newest calls), encodes the window's ``batch`` frame once and
offers it to every connection of the process. Group membership per connection would make
the channel layer dispatch every event through every consumer of the process (500 clients x
1000 events/s is 500 000 dispatches). The layer is channels-redis' pub/sub one (settings):
at most once, which suits a live view; a snapshot on connect and on overflow covers any gap.

Critical events (a server going down or coming back from down) skip the window: the fan-out
offers them at once as a ``critical`` frame. Each connection has its own bounded buffer and
sender task, so a slow client only delays itself; when its buffer overflows the backlog is
dropped and the client gets a fresh ``snapshot`` (reason ``overflow``) instead.

Frames: ``{"type": "snapshot", "reason", "servers", "totals", "calls", "timeline", ...}``,
``{"type": "batch", "events": [...]}``, ``{"type": "critical", "event": {...}}``. Events have
a ``kind``: ``status`` (a change), ``server`` (new figures of a server) or ``call``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections import deque
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder

from monitoring import dashboard
from monitoring.status import STATUS_GROUP
from servers.gateway.recorder import CALLS_GROUP

logger = logging.getLogger(__name__)

WINDOW = 0.1  # seconds: at most one batch frame per connection per window
BUFFER_EVENTS = 1000  # events queued for one connection before its backlog is dropped for a snapshot
TAIL_PER_WINDOW = 50  # newest calls kept per window (the page shows 20)
FIGURES_EVERY = 10.0  # seconds between re-reads of the servers' figures (rollups run every minute)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, cls=DjangoJSONEncoder, separators=(",", ":"))


def status_event(message: dict[str, Any]) -> dict[str, Any]:
    """A ``status.changed`` group message as a dashboard event (extra keys, e.g. a benchmark's, are kept)."""
    event = {key: value for key, value in message.items() if key != "type"}
    return {"kind": "status", **event}


class Fanout:
    """The process's single listener on the groups; coalesces each window and offers frames to connections."""

    def __init__(self) -> None:
        self.subscribers: set[StatusConsumer] = set()
        self.window = WINDOW
        self.figures_every = FIGURES_EVERY
        self._status: dict[int | str, dict[str, Any]] = {}  # coalesced per server
        self._figures: dict[int | str, dict[str, Any]] = {}
        self._calls: deque[dict[str, Any]] = deque(maxlen=TAIL_PER_WINDOW)
        self._flush: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._channel = ""
        self._lock = asyncio.Lock()

    async def subscribe(self, consumer: StatusConsumer) -> None:
        async with self._lock:
            if not self._tasks:
                await self._start()
            self.subscribers.add(consumer)

    async def unsubscribe(self, consumer: StatusConsumer) -> None:
        async with self._lock:
            self.subscribers.discard(consumer)
            if not self.subscribers and self._tasks:
                await self._stop()

    async def _start(self) -> None:
        layer = get_channel_layer()
        self._channel = await layer.new_channel("dashboard.")
        for group in (STATUS_GROUP, CALLS_GROUP):
            await layer.group_add(group, self._channel)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._receive(layer)), loop.create_task(self._refresh())]

    async def _stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        layer = get_channel_layer()
        for group in (STATUS_GROUP, CALLS_GROUP):
            with contextlib.suppress(Exception):
                await layer.group_discard(group, self._channel)

    async def _receive(self, layer: Any) -> None:
        while True:
            try:
                message = await layer.receive(self._channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("dashboard fan-out: channel layer receive failed; retrying", exc_info=True)
                await asyncio.sleep(0.2)
                continue
            try:
                self.accept(message)
            except Exception:
                logger.exception("dashboard fan-out: bad message %r", message.get("type"))

    async def _refresh(self) -> None:
        """Every ``figures_every`` seconds: servers whose figures changed become ``server`` events."""
        last = {row["id"]: row for row in await database_sync_to_async(dashboard.all_figures)()}
        while True:
            await asyncio.sleep(self.figures_every)
            try:
                rows = await database_sync_to_async(dashboard.all_figures)()
            except Exception:
                logger.warning("dashboard fan-out: reading figures failed", exc_info=True)
                continue
            for row in rows:
                if last.get(row["id"]) != row:
                    self._figures[row["id"]] = {"kind": "server", **row}
                    self._schedule()
            last = {row["id"]: row for row in rows}

    def accept(self, message: dict[str, Any]) -> None:
        """One group message: critical ones are offered now, the rest wait for the window's batch."""
        kind = message.get("type")
        if kind == "status.changed":
            event = status_event(message)
            server = event.get("server_id") or event.get("slug") or ""
            if dashboard.is_critical(event):
                self._status.pop(server, None)  # older than this one: must not follow it in the batch
                self.offer(encode({"type": "critical", "event": event}), 1)
            else:
                self._status[server] = event
                self._schedule()
        elif kind == "calls.batch":
            self._calls.extend({"kind": "call", **call} for call in message.get("calls", []))
            self._schedule()

    def _schedule(self) -> None:
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(self.window, self.flush)

    def flush(self) -> None:
        """End of a window: one batch frame with every change of the window, for every connection."""
        self._flush = None
        events = [*self._status.values(), *self._figures.values(), *self._calls]
        self._status.clear()
        self._figures.clear()
        self._calls.clear()
        if events:
            self.offer(encode({"type": "batch", "events": events}), len(events))

    def offer(self, text: str, events: int) -> None:
        for consumer in list(self.subscribers):
            consumer.offer(text, events)


_fanouts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Fanout] = weakref.WeakKeyDictionary()


def fanout() -> Fanout:
    """The fan-out of the running event loop (one per web process in production)."""
    loop = asyncio.get_running_loop()
    if loop not in _fanouts:
        _fanouts[loop] = Fanout()
    return _fanouts[loop]


class StatusConsumer(AsyncJsonWebsocketConsumer):
    """One dashboard connection: staff only; a snapshot, then the fan-out's frames through a bounded buffer."""

    buffer_events = BUFFER_EVENTS
    # No channel of its own (an unknown alias gives no layer): the fan-out delivers everything.
    channel_layer_alias = "dashboard-fanout-only"

    async def connect(self) -> None:
        self._sender: asyncio.Task[None] | None = None
        user = self.scope.get("user")
        # Accept then close, so that the browser sees why (a refused handshake carries no code).
        if user is None or not user.is_authenticated:
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not user.is_staff:
            await self.accept()
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.accept()
        self._queue: deque[tuple[str, int]] = deque()
        self._queued = 0
        self._resync: str | None = "connect"
        self._wakeup = asyncio.Event()
        self._wakeup.set()
        self._fanout = fanout()
        await self._fanout.subscribe(self)  # before the snapshot is read: nothing falls between the two
        self._sender = asyncio.get_running_loop().create_task(self._send_frames())

    async def disconnect(self, code: int) -> None:
        if self._sender is None:
            return
        self._sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._sender
        self._sender = None
        await self._fanout.unsubscribe(self)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """The page may ask for a fresh snapshot (e.g. after the tab was hidden); nothing else is read."""
        if isinstance(content, dict) and content.get("type") == "resync":
            self._request_snapshot("requested")

    def offer(self, text: str, events: int) -> None:
        """Queue a frame (non-blocking); on overflow drop the backlog and owe the client a snapshot."""
        if self._resync is not None:
            return  # a snapshot not yet read will cover this
        if self._queued + events > self.buffer_events:
            self._request_snapshot("overflow")
            return
        self._queue.append((text, events))
        self._queued += events
        self._wakeup.set()

    def _request_snapshot(self, reason: str) -> None:
        self._queue.clear()
        self._queued = 0
        self._resync = reason
        self._wakeup.set()

    async def _send_frames(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while True:
                if self._resync is not None:
                    reason, self._resync = self._resync, None
                    snapshot = await database_sync_to_async(dashboard.snapshot)(reason)
                    await self.send(text_data=encode(snapshot))
                elif self._queue:
                    text, events = self._queue.popleft()
                    self._queued -= events
                    await self.send(text_data=text)
                else:
                    break


def fanout_subscribers() -> list[StatusConsumer]:
    """The connections of the running loop's fan-out (tests and diagnostics)."""
    return list(fanout().subscribers)
