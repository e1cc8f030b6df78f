"""The monitoring app's settings: one frozen object read from Django settings, every default written here once.

The environment sets those the README documents under the same name (``mcphub/settings.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from logs.conf import read_once


@dataclass(frozen=True)
class MonitoringConf:
    schedule_seconds: float  # MONITORING_SCHEDULE_SECONDS: beat's health-check fan-out period
    degraded_latency_ms: float  # MONITORING_DEGRADED_LATENCY_MS: a slower check means degraded
    down_after: int  # MONITORING_DOWN_AFTER: consecutive failed checks that mean down
    recent_checks: int  # MONITORING_RECENT_CHECKS: a failure among these means degraded
    stale_factor: float  # MONITORING_STALE_FACTOR: no check for this many intervals means unknown
    retention_days: float  # MONITORING_RETENTION_DAYS: health checks kept
    status_cache_ttl: float  # MONITORING_STATUS_CACHE_TTL: seconds /api/status/ and /api/health/ come from Redis
    metrics_window_minutes: int  # MONITORING_METRICS_WINDOW_MINUTES: the calls/min, error rate, p95 of /api/status/
    rollup_redo_minutes: int  # METRICS_ROLLUP_REDO_MINUTES: past minutes each minute rollup recomputes (late rows)
    rollup_redo_hours: int  # METRICS_ROLLUP_REDO_HOURS: complete past hours each hourly rollup recomputes
    minute_retention_days: int  # METRICS_MINUTE_RETENTION_DAYS: minute buckets kept
    hour_retention_days: int  # METRICS_HOUR_RETENTION_DAYS: hour buckets kept
    # MCPHUB_METRICS_ALLOWED_NETWORKS: client networks (CIDR) that may read /metrics without a token
    metrics_allowed_networks: tuple[str, ...]

    @classmethod
    def from_settings(cls) -> MonitoringConf:
        return cls(
            schedule_seconds=float(getattr(settings, "MONITORING_SCHEDULE_SECONDS", 5.0)),
            degraded_latency_ms=float(getattr(settings, "MONITORING_DEGRADED_LATENCY_MS", 1000.0)),
            down_after=max(1, int(getattr(settings, "MONITORING_DOWN_AFTER", 3))),
            recent_checks=max(1, int(getattr(settings, "MONITORING_RECENT_CHECKS", 3))),
            stale_factor=float(getattr(settings, "MONITORING_STALE_FACTOR", 3.0)),
            retention_days=float(getattr(settings, "MONITORING_RETENTION_DAYS", 7)),
            status_cache_ttl=float(getattr(settings, "MONITORING_STATUS_CACHE_TTL", 2.0)),
            metrics_window_minutes=int(getattr(settings, "MONITORING_METRICS_WINDOW_MINUTES", 5)),
            rollup_redo_minutes=int(getattr(settings, "METRICS_ROLLUP_REDO_MINUTES", 5)),
            rollup_redo_hours=int(getattr(settings, "METRICS_ROLLUP_REDO_HOURS", 2)),
            minute_retention_days=int(getattr(settings, "METRICS_MINUTE_RETENTION_DAYS", 2)),
            hour_retention_days=int(getattr(settings, "METRICS_HOUR_RETENTION_DAYS", 90)),
            metrics_allowed_networks=tuple(getattr(settings, "MCPHUB_METRICS_ALLOWED_NETWORKS", ())),
        )


monitoring_conf = read_once(MonitoringConf.from_settings)
