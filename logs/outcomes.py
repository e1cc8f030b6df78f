"""How a call ended: the one list of request-log outcomes.

Apart from ``logs.models`` so that code running without Django's app registry (the
upstream layer's errors, which carry the outcome they map to) can import it.
"""

from __future__ import annotations

from django.db import models


class Outcome(models.TextChoices):
    """Metric buckets (a count column each), Prometheus labels and the API's filter follow this list."""

    OK = "ok", "ok"
    TOOL_ERROR = "tool_error", "tool error"
    PROTOCOL_ERROR = "protocol_error", "protocol error"
    TIMEOUT = "timeout", "timeout"
    OVERLOADED = "overloaded", "overloaded"  # the server's call queue was full: refused before it was sent
    CONNECTION_LOST = "connection_lost", "connection lost"  # the upstream went away while the call ran
    UPSTREAM_DOWN = "upstream_down", "upstream down"  # could not be reached or started, or its circuit is open
    DENIED = "denied", "denied"
