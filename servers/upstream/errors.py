"""Errors of the upstream layer; each carries the request-log outcome it maps to."""

from __future__ import annotations

from logs.outcomes import Outcome


class UpstreamError(Exception):
    """An upstream call failed before a result came back."""

    outcome: Outcome = Outcome.UPSTREAM_DOWN

    def __init__(self, server_slug: str, message: str) -> None:
        super().__init__(f"{server_slug}: {message}")
        self.server_slug = server_slug


class UpstreamUnavailable(UpstreamError):
    """The server could not be reached or started (or is in its restart backoff)."""


class UpstreamTimeout(UpstreamError):
    """The server did not answer within the configured limit."""

    outcome = Outcome.TIMEOUT


class UpstreamCrashed(UpstreamError):
    """The connection or process died while the request was in flight."""

    outcome = Outcome.CONNECTION_LOST


class UpstreamOverloaded(UpstreamError):
    """Too many calls are waiting for this server: refused without being sent."""

    outcome = Outcome.OVERLOADED
