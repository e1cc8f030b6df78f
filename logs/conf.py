"""The logs app's settings: one frozen object read from Django settings, every default written here once.

The environment sets those the README documents under the same name (``mcphub/settings.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from django.conf import settings
from django.core.signals import setting_changed

T = TypeVar("T")


@dataclass(frozen=True)
class LogsConf:
    retention_months: int  # LOGS_RETENTION_MONTHS: full months kept besides the current one
    months_ahead: int  # LOGS_MONTHS_AHEAD: partitions created ahead of the current month
    writer_batch_size: int  # LOGS_WRITER_BATCH_SIZE: COPY a batch every this many records...
    writer_flush_interval: float  # LOGS_WRITER_FLUSH_INTERVAL: ...or every this many seconds, whichever first
    writer_max_buffer: int  # LOGS_WRITER_MAX_BUFFER: records queued in memory per process
    spool_dir: Path  # LOGS_SPOOL_DIR: records kept here while PostgreSQL is down
    api_default_window_hours: int  # LOGS_API_DEFAULT_WINDOW_HOURS: GET /api/logs/ without since/until
    api_max_window_days: int  # LOGS_API_MAX_WINDOW_DAYS: the widest since..until a request may ask for

    @classmethod
    def from_settings(cls) -> LogsConf:
        return cls(
            retention_months=int(getattr(settings, "LOGS_RETENTION_MONTHS", 6)),
            months_ahead=int(getattr(settings, "LOGS_MONTHS_AHEAD", 3)),
            writer_batch_size=int(getattr(settings, "LOGS_WRITER_BATCH_SIZE", 1000)),
            writer_flush_interval=float(getattr(settings, "LOGS_WRITER_FLUSH_INTERVAL", 1.0)),
            writer_max_buffer=int(getattr(settings, "LOGS_WRITER_MAX_BUFFER", 100_000)),
            spool_dir=Path(getattr(settings, "LOGS_SPOOL_DIR", None) or Path(settings.VAR_DIR) / "logs-spool"),
            api_default_window_hours=int(getattr(settings, "LOGS_API_DEFAULT_WINDOW_HOURS", 24)),
            api_max_window_days=int(getattr(settings, "LOGS_API_MAX_WINDOW_DAYS", 31)),
        )


def read_once(read: Callable[[], T]) -> Callable[[], T]:
    """`read` cached for the process: every app's conf reader (`logs_conf`, `servers_conf`, `monitoring_conf`)."""
    cached = functools.cache(read)
    # Test support only: pytest-django's `settings` fixture and override_settings announce their changes here.
    setting_changed.connect(lambda **kwargs: cached.cache_clear(), weak=False)
    return cached


logs_conf = read_once(LogsConf.from_settings)
