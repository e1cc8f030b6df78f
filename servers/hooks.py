"""What the upstream layer's reports do in the hub: persist the era, keep stderr, record scaling.

A tools/list_changed is not handled here: its owner re-lists through the live session that heard
it (the gateway; a discovery lists once more). Scheduling a new discovery would start a new
process, whose own connect may announce a change again: a loop.

The upstream layer calls these from its event loop; the ORM is blocking, so each write is
started in the task group of the upstream manager's owner and runs through
`servers.blocking.run_blocking`, one at a time, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import anyio
from django.db import DatabaseError

from servers.blocking import run_blocking
from servers.models import McpServer, ScalingEvent
from servers.upstream import stderr
from servers.upstream.session import SessionHooks

logger = logging.getLogger(__name__)

StartSoon = Callable[..., Any]  # a task group's start_soon(async_function, *args)


def django_hooks(start_soon: StartSoon, on_tools_changed: Callable[[int], None] | None = None) -> SessionHooks:
    """The hooks for an upstream manager run inside the task group whose `start_soon` is given.

    That group outlives the manager (its block encloses the manager's), so writes started by
    the last reports finish before it ends.
    """
    in_order = anyio.Lock()  # fair: writes run in the order they were started

    def in_background(work: Callable[[], object]) -> None:
        start_soon(_write, work, in_order)

    hooks = SessionHooks(
        on_era=lambda server_id, era, version: in_background(
            lambda: McpServer.objects.filter(pk=server_id).update(era=era, protocol_version=version)
        ),
        on_stderr=_keep_stderr,
        on_restart=_log_restart,
        on_scale=lambda server_id, before, after, reason: in_background(
            lambda: ScalingEvent.record(server_id, before, after, reason)
        ),
    )
    return hooks if on_tools_changed is None else replace(hooks, on_tools_changed=on_tools_changed)


async def _write(work: Callable[[], object], in_order: anyio.Lock) -> None:
    async with in_order:
        try:
            await run_blocking(work)
        except DatabaseError as error:  # an outage, not a bug: one line, no traceback
            logger.warning("upstream hook not saved, database unavailable: %s", error)
        except Exception:
            logger.exception("upstream hook failed")


def _keep_stderr(server_id: int, lines: list[str]) -> None:
    # Already called off the event loop (the stdio transport uses a worker thread).
    try:
        stderr.append_lines(server_id, lines)
    except Exception:
        logger.warning("stderr of server %s not kept: Redis unavailable", server_id)


def _log_restart(server_id: int, reason: str) -> None:
    logger.info("upstream server %s reconnecting: %s", server_id, reason)
