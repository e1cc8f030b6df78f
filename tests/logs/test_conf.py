"""The logs settings: defaults written once in logs/conf.py; a setting (as the environment gives it) overrides."""

from __future__ import annotations

from pathlib import Path

from logs.conf import LogsConf, logs_conf


def test_defaults(settings) -> None:
    assert LogsConf.from_settings() == LogsConf(
        retention_months=6,
        months_ahead=3,
        writer_batch_size=1000,
        writer_flush_interval=1.0,
        writer_max_buffer=100_000,
        spool_dir=Path(settings.VAR_DIR) / "logs-spool",
        api_default_window_hours=24,
        api_max_window_days=31,
    )


def test_an_override_is_read_once(settings) -> None:
    settings.LOGS_RETENTION_MONTHS = "9"  # a string, as from the environment

    conf = logs_conf()

    assert conf.retention_months == 9
    assert logs_conf() is conf
