"""What the upstream layer's reports do in the hub: persist the era, keep stderr, record scaling.

A tools/list_changed is not handled here: its owner re-lists through the live session that heard
it (the gateway; a discovery lists once more). Scheduling a new discovery would start a new
process, whose own connect may announce a change again: a loop.

The upstream layer calls these from its event loop; the ORM and Celery are
blocking, so the work runs on one background thread, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache

from django.db import DatabaseError, connection

from servers.upstream import stderr
from servers.upstream.session import SessionHooks

logger = logging.getLogger(__name__)


@cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="upstream-hooks")


def _in_background(work: Callable[[], None]) -> None:
    def run() -> None:
        try:
            work()
        except DatabaseError as error:  # an outage, not a bug: one line, no traceback
            logger.warning("upstream hook not saved, database unavailable: %s", error)
        except Exception:
            logger.exception("upstream hook failed")
        finally:
            connection.close()  # this thread's own connection; never left open

    _executor().submit(run)


def _save_era(server_id: int, era: str, version: str) -> None:
    from servers.models import McpServer

    _in_background(lambda: McpServer.objects.filter(pk=server_id).update(era=era, protocol_version=version))


def _keep_stderr(server_id: int, lines: list[str]) -> None:
    # Already called off the event loop (the stdio transport uses a worker thread).
    try:
        stderr.append_lines(server_id, lines)
    except Exception:
        logger.warning("stderr of server %s not kept: Redis unavailable", server_id)


def _log_restart(server_id: int, reason: str) -> None:
    logger.info("upstream server %s reconnecting: %s", server_id, reason)


def _record_scaling(server_id: int, from_instances: int, to_instances: int, reason: str) -> None:
    from servers.services import record_scaling

    _in_background(lambda: record_scaling(server_id, from_instances, to_instances, reason))


def django_hooks() -> SessionHooks:
    return SessionHooks(
        on_era=_save_era,
        on_stderr=_keep_stderr,
        on_restart=_log_restart,
        on_scale=_record_scaling,
    )
