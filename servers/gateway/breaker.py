"""The gateway's circuit breaker, per web process, driven by the status the health checks write.

- A server whose status is `down` is *open*: calls fail fast.
- `MONITORING_BREAKER_COOLDOWN` seconds (`servers_conf().breaker_cooldown`) after it went down it
  is *half-open*: one trial call at a time is let through (per web process); the others still fail fast.
- A trial that reaches the server (a result, even a tool or protocol error) *closes* the breaker
  in this process and asks the worker for an immediate health check (by task name: `servers`
  never imports `monitoring`), which flips the status so every process closes. Should that check
  still fail, the local close lapses after one more cool-down and the breaker is half-open again.
- A trial that fails (unreachable, timeout, crash) reopens it for another cool-down.

A status change (a new `status_changed_at` in the snapshot) starts afresh.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from servers.conf import servers_conf

logger = logging.getLogger(__name__)


@dataclass
class _State:
    opened_at: datetime | None  # status_changed_at of the `down` status this state belongs to
    retry_at: float = 0.0  # monotonic: no trial before this (after a failed trial)
    trial_running: bool = False
    closed_until: float = 0.0  # monotonic: closed locally by a successful trial until then


@dataclass(frozen=True)
class Admission:
    allowed: bool
    trial: bool = False
    retry_in: float = 0.0  # seconds until the next trial may go (when refused)


PASS = Admission(allowed=True)


class CircuitBreaker:
    def __init__(self) -> None:
        self._states: dict[int, _State] = {}

    def admit(self, server_id: int, down: bool, status_changed_at: datetime | None) -> Admission:
        """May a call to this server go now, and is it the trial call?"""
        if not down:
            self._states.pop(server_id, None)
            return PASS
        state = self._states.get(server_id)
        if state is None or state.opened_at != status_changed_at:
            state = self._states[server_id] = _State(status_changed_at)
        now = time.monotonic()
        if now < state.closed_until:
            return PASS
        cooldown = servers_conf().breaker_cooldown
        wait = state.retry_at - now
        if status_changed_at is not None:
            wait = max(wait, cooldown - (timezone.now() - status_changed_at).total_seconds())
        if state.trial_running or wait > 0:
            return Admission(allowed=False, retry_in=max(wait, 0.0))
        state.trial_running = True
        return Admission(allowed=True, trial=True)

    def settle(self, server_id: int, reachable: bool | None) -> None:
        """The trial's outcome: the server answered (True), did not (False), or unknown (cancelled: None)."""
        state = self._states.get(server_id)
        if state is None:
            return
        state.trial_running = False
        now = time.monotonic()
        if reachable:
            state.closed_until = now + servers_conf().breaker_cooldown
        elif reachable is False:
            state.retry_at = now + servers_conf().breaker_cooldown


async def request_health_check(server_id: int) -> None:
    """Background: ask the worker to check the server now (never raises: the call already succeeded)."""
    from asgiref.sync import sync_to_async

    from servers.services import request_health_check as send

    try:
        await sync_to_async(send, thread_sensitive=False)(server_id)
    except Exception:
        logger.warning("could not request a health check of server %s", server_id, exc_info=True)
