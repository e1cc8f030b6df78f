"""The Celery application: configured from Django settings (namespace CELERY), the beat schedule below.

Tasks live in each app's `tasks.py` (autodiscovered) under Celery's default names,
`<app>.tasks.<function>` (e.g. `monitoring.tasks.check_server`, which `servers` sends by name:
it never imports `monitoring`).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.schedules import crontab

from monitoring.conf import monitoring_conf

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcphub.settings")

app = Celery("mcphub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def beat_schedule() -> dict[str, Any]:
    """Every periodic task (run by `celery -A mcphub beat`); read when Celery loads its configuration."""
    period = monitoring_conf().schedule_seconds
    return {
        "beat_schedule": {
            "monitoring-schedule-checks": {
                "task": "monitoring.tasks.schedule_checks",
                "schedule": period,
                "options": {"expires": period},  # a fan-out that waited a whole period is dropped
            },
            "monitoring-rollup-minutes": {
                "task": "monitoring.tasks.rollup_minutes",
                "schedule": 60.0,
                "options": {"expires": 55},
            },
            "monitoring-rollup-hours": {
                "task": "monitoring.tasks.rollup_hours",
                "schedule": crontab(minute=2),
                "options": {"expires": 3000},
            },
            "monitoring-prune-health-checks": {
                "task": "monitoring.tasks.prune_health_checks",
                "schedule": crontab(hour=4, minute=23),
            },
            "monitoring-prune-metrics": {
                "task": "monitoring.tasks.prune_metrics",
                "schedule": crontab(hour=4, minute=13),
            },
            "logs-ensure-partitions": {
                "task": "logs.tasks.ensure_partitions",
                "schedule": crontab(hour=0, minute=17),
            },
            "logs-drop-old-partitions": {
                "task": "logs.tasks.drop_old_partitions",
                "schedule": crontab(hour=3, minute=47),
            },
        }
    }


# A callable: the settings it reads are loaded only when Celery needs its configuration, not at import.
app.add_defaults(beat_schedule)
