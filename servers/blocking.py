"""The one way blocking Django code (the ORM, the cache, Celery's send) leaves an event loop.

The gateway and the upstream hooks run in one event loop per process; what blocks runs in a
worker thread through `run_blocking`, started from the owner's task group when nobody waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

from django.db import DatabaseError, connection

T = TypeVar("T")
Args = TypeVarTuple("Args")


async def run_blocking(function: Callable[[*Args], T], *args: *Args) -> T:
    """`function(*args)` in a worker thread, whose database connection is closed after it.

    Worker threads are the event loop's default executor: pooled, they outlive the call, and a
    connection left open would stay open, idle, per thread (and one an outage broke would fail
    the next call). A cancelled caller does not wait: the thread finishes on its own, closing
    its connection all the same. (Not anyio's worker threads: those are stopped only when the
    loop's root task ends, which never happens under daphne, whose exit would then hang.)

    The request-log writer (logs.writer) is the one exception: a thread of its own for the
    life of the process, with its own connection, that batches what calls hand it.
    """

    def call() -> T:
        try:
            return function(*args)
        finally:
            with contextlib.suppress(DatabaseError):  # a connection the outage broke: nothing left to close
                connection.close()

    return await asyncio.to_thread(call)
