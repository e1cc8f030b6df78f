"""Live tail of calls: finished calls leave the call path for the Channels group "calls".

``publish`` is what the call path does: one append to a bounded in-memory buffer (no I/O, no
lock, never waits). A daemon thread with its own event loop drains the buffer every
``FLUSH_SECONDS`` into one ``calls.batch`` group message. The group name is a plain string:
``servers`` never imports the dashboard (``monitoring``) that listens to it. A burst larger
than the buffer keeps only the newest calls: this is a tail to watch, the request log is the
record.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import deque
from typing import Any

from logs.writer import LogRecord
from servers.gateway import outages

logger = logging.getLogger(__name__)

CALLS_GROUP = "calls"
EVENT_TYPE = "calls.batch"
FLUSH_SECONDS = 0.1
BUFFER_SIZE = 1000
BATCH_LIMIT = 100  # newest calls per group message; the dashboard shows fewer

_buffer: deque[LogRecord] = deque(maxlen=BUFFER_SIZE)
_started = False
_start_lock = threading.Lock()


def publish(record: LogRecord) -> None:
    """Hand a finished call to the live tail (non-blocking; the oldest call is dropped when full)."""
    _buffer.append(record)
    if not _started:
        _start()


def as_event(record: LogRecord) -> dict[str, Any]:
    """The call as the dashboard's tail shows it."""
    return {
        "server_id": record.server_id,
        "server": record.server_slug,
        "tool": record.tool,
        "outcome": record.outcome,
        "latency_ms": round(record.latency_ms, 2),
        "at": record.created_at.isoformat(),
    }


def take_batch() -> tuple[list[dict[str, Any]], int]:
    """The buffered calls (newest ``BATCH_LIMIT``) as events, and how many older ones were skipped."""
    records: list[LogRecord] = []
    while True:
        try:
            records.append(_buffer.popleft())
        except IndexError:
            break
    skipped = max(0, len(records) - BATCH_LIMIT)
    return [as_event(record) for record in records[skipped:]], skipped


def _start() -> None:
    global _started
    with _start_lock:
        if _started:
            return
        _started = True
        threading.Thread(target=_run, name="live-calls", daemon=True).start()


def _run() -> None:
    asyncio.run(_drain_forever())


async def _drain_forever() -> None:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    while True:
        await asyncio.sleep(FLUSH_SECONDS)
        if not _buffer:
            continue
        calls, skipped = take_batch()
        try:
            await layer.group_send(CALLS_GROUP, {"type": EVENT_TYPE, "calls": calls, "skipped": skipped})
        except Exception as exc:
            # Redis away: these calls miss the live tail (they are in the request log).
            outages.redis.failed("live tail of calls", exc)
        else:
            outages.redis.succeeded()


def _forget_after_fork() -> None:
    global _started, _start_lock
    _started = False
    _start_lock = threading.Lock()
    _buffer.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
