"""`manage.py logs_partitions --ensure | --drop | --list` and the Celery tasks behind the beat schedule."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.utils import timezone

from logs import partitions, tasks
from logs.models import RequestLog
from mcphub.celery import app
from tests.logs.conftest import utc

pytestmark = pytest.mark.usefixtures("scratch_partitions")


def run(*args: str) -> str:
    out = StringIO()
    call_command("logs_partitions", *args, stdout=out)
    return out.getvalue()


def test_ensure_and_list() -> None:
    output = run("--ensure", "--months-ahead", "5")

    assert "created" in output
    this_month = partitions.month_start(timezone.now())
    expected = partitions.partition_name(partitions.add_months(this_month, 5))
    assert expected in output
    assert "created 0 partition(s)" in run("--ensure", "--months-ahead", "5")
    listing = run("--list")
    assert expected in listing
    assert "logs_requestlog_default" in listing and "DEFAULT" in listing


def test_drop_uses_the_retention_setting() -> None:
    partitions.ensure_partitions(months_ahead=1, now=utc(2019, 1, 1))
    RequestLog.objects.create(created_at=utc(2019, 1, 5), outcome="ok")

    output = run("--drop")

    assert "logs_requestlog_p2019_01" in output and "logs_requestlog_p2019_02" in output
    assert not RequestLog.objects.filter(created_at__year=2019).exists()
    assert f"logs_requestlog_p{timezone.now():%Y_%m}" in run("--list")  # the current month stays


def test_one_action_is_required() -> None:
    with pytest.raises(CommandError):
        call_command("logs_partitions")


def test_beat_schedule_runs_both_tasks_daily() -> None:
    tasks_scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}

    assert {"logs.tasks.ensure_partitions", "logs.tasks.drop_old_partitions"} <= tasks_scheduled


def test_retention_task_drains_default_and_drops_old_months() -> None:
    RequestLog.objects.create(created_at=utc(2018, 3, 3), outcome="ok")  # no partition: lands in DEFAULT

    dropped = tasks.drop_old_partitions.apply().get()

    assert dropped == ["logs_requestlog_p2018_03"]
    assert not RequestLog.objects.filter(created_at__year=2018).exists()


def test_tasks_skip_while_another_run_holds_the_lock() -> None:
    lock = cache.lock("logs:lock:ensure_partitions", timeout=60)
    assert lock.acquire(blocking=False)
    try:
        assert tasks.ensure_partitions.apply().get() is None
    finally:
        lock.release()
    assert isinstance(tasks.ensure_partitions.apply().get(), list)
