"""The monitoring settings: defaults written once in monitoring/conf.py; a setting overrides; beat follows it."""

from __future__ import annotations

from mcphub.celery import beat_schedule
from monitoring.conf import MonitoringConf, monitoring_conf


def test_defaults() -> None:
    assert MonitoringConf.from_settings() == MonitoringConf(
        schedule_seconds=5.0,
        degraded_latency_ms=1000.0,
        down_after=3,
        recent_checks=3,
        stale_factor=3.0,
        retention_days=7.0,
        status_cache_ttl=2.0,
        metrics_window_minutes=5,
        rollup_redo_minutes=5,
        rollup_redo_hours=2,
        minute_retention_days=2,
        hour_retention_days=90,
        metrics_allowed_networks=(),
    )


def test_an_override_is_read_once(settings) -> None:
    settings.MONITORING_SCHEDULE_SECONDS = "1.5"  # a string, as from the environment
    settings.MCPHUB_METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]

    conf = monitoring_conf()

    assert (conf.schedule_seconds, conf.metrics_allowed_networks) == (1.5, ("10.0.0.0/8",))
    assert monitoring_conf() is conf
    fan_out = beat_schedule()["beat_schedule"]["monitoring-schedule-checks"]
    assert (fan_out["schedule"], fan_out["options"]["expires"]) == (1.5, 1.5)
