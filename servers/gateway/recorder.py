"""The record of each call: one request-log record for the writer, and the dashboard's live tail.

`CallRecorder.finish` is what the call path does: a non-blocking put to the request-log writer
(logs.writer) and one append to the live tail's bounded buffer (no I/O, no lock, never waits).
`LiveTail.run`, a task in the gateway's task group, drains that buffer every ``FLUSH_SECONDS``
into one ``calls.batch`` message to the Channels group "calls". The group name is a plain
string: ``servers`` never imports the dashboard (``monitoring``) that listens to it. A burst
larger than the buffer keeps only the newest calls: this is a tail to watch, the request log
is the record.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import anyio
from anyio.abc import TaskStatus
from channels.layers import get_channel_layer
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from logs.writer import LogRecord, submit
from servers import outages
from servers.gateway.registry import ServerEntry
from servers.gateway.scope import Ctx, RequestScope

CALLS_GROUP = "calls"
EVENT_TYPE = "calls.batch"
FLUSH_SECONDS = 0.1
BUFFER_SIZE = 1000
BATCH_LIMIT = 100  # newest calls per group message; the dashboard shows fewer


class LiveTail:
    """Finished calls on their way to the Channels group "calls", in batches."""

    def __init__(self) -> None:
        self._buffer: deque[LogRecord] = deque(maxlen=BUFFER_SIZE)

    def publish(self, record: LogRecord) -> None:
        """Hand a finished call to the live tail (non-blocking; the oldest call is dropped when full)."""
        self._buffer.append(record)

    def take_batch(self) -> tuple[list[dict[str, Any]], int]:
        """The buffered calls (newest ``BATCH_LIMIT``) as events, and how many older ones were skipped."""
        records: list[LogRecord] = []
        while self._buffer:
            records.append(self._buffer.popleft())
        skipped = max(0, len(records) - BATCH_LIMIT)
        return [as_event(record) for record in records[skipped:]], skipped

    async def run(self, *, task_status: TaskStatus[anyio.CancelScope] = anyio.TASK_STATUS_IGNORED) -> None:
        """Send the buffered calls every ``FLUSH_SECONDS`` until cancelled (through the scope it starts with)."""
        layer = get_channel_layer()
        with anyio.CancelScope() as scope:
            task_status.started(scope)
            if layer is None:
                return
            while True:
                await anyio.sleep(FLUSH_SECONDS)
                if not self._buffer:
                    continue
                calls, skipped = self.take_batch()
                try:
                    await layer.group_send(CALLS_GROUP, {"type": EVENT_TYPE, "calls": calls, "skipped": skipped})
                except Exception as exc:
                    # Redis away: these calls miss the live tail (they are in the request log).
                    outages.redis.failed("live tail of calls", exc)
                else:
                    outages.redis.succeeded()


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


live_tail = LiveTail()  # this process's: every call's recorder appends, the gateway's task drains


class CallRecorder:
    """Builds the request-log record of one call and hands it to the writer and the live tail."""

    def __init__(
        self, scope: RequestScope, name: str, headers: Mapping[str, str], protocol_version: str, age: float = 0.0
    ) -> None:
        self._started = time.perf_counter() - age  # `age`: seconds the recorded work ran before (a task's)
        self._record = LogRecord(
            outcome="ok",
            tool=name,
            token_id=scope.token.id,
            token_name=scope.token.name,
            session_id=headers.get("mcp-session-id", "") or "",
            protocol_era="stateless" if protocol_version in MODERN_PROTOCOL_VERSIONS else "handshake",
            request_bytes=int(headers.get("content-length", 0) or 0),
        )
        self._done = False

    @classmethod
    def of(cls, ctx: Ctx, scope: RequestScope, name: str, age: float = 0.0) -> CallRecorder:
        """The recorder of a request the SDK dispatched."""
        headers: Mapping[str, str] = ctx.request.headers if ctx.request is not None else {}
        return cls(scope, name, headers, ctx.protocol_version, age)

    @property
    def affinity_key(self) -> str:
        """The downstream session when there is one (handshake era), else the token."""
        record = self._record
        return f"session:{record.session_id}" if record.session_id else f"token:{record.token_id}"

    def server(self, entry: ServerEntry, tool: str) -> None:
        self._record.server_id = entry.id
        self._record.server_slug = entry.slug
        self._record.tool = tool

    def finish(
        self, outcome: str, *, result: Any = None, response_bytes: int = 0, error: str = "", code: int | None = None
    ) -> None:
        if self._done:
            return
        self._done = True
        record = self._record
        record.outcome = outcome
        record.latency_ms = (time.perf_counter() - self._started) * 1000
        record.error = error
        record.error_code = code
        record.response_bytes = response_bytes
        if result is not None:
            record.response_bytes = len(result.model_dump_json(by_alias=True, exclude_none=True).encode())
        submit(record)
        live_tail.publish(record)
