"""Monthly partitions on a real PostgreSQL: creation, concurrency, routing, DEFAULT catch-up, retention, pruning."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection, connections
from django.utils import timezone

from logs import partitions
from logs.models import RequestLog
from tests.logs.conftest import rows_by_partition, utc

pytestmark = pytest.mark.usefixtures("scratch_partitions")


def names(prefix: str = "logs_requestlog_p2031") -> list[str]:
    return [p.name for p in partitions.list_partitions() if p.name.startswith(prefix)]


def test_migrate_created_this_month_and_default() -> None:
    listed = partitions.list_partitions()
    this_month = partitions.partition_name(partitions.month_start(timezone.now()))

    assert this_month in [p.name for p in listed]
    assert listed[-1].is_default and listed[-1].name == "logs_requestlog_default"


def test_ensure_creates_months_ahead_and_is_idempotent() -> None:
    created = partitions.ensure_partitions(months_ahead=3, now=utc(2031, 11, 20, 12))

    assert created == [
        "logs_requestlog_p2031_11",
        "logs_requestlog_p2031_12",
        "logs_requestlog_p2032_01",
        "logs_requestlog_p2032_02",
    ]
    assert partitions.ensure_partitions(months_ahead=3, now=utc(2031, 11, 20, 12)) == []
    dec = next(p for p in partitions.list_partitions() if p.name == "logs_requestlog_p2031_12")
    assert (dec.lower, dec.upper) == (utc(2031, 12, 1), utc(2032, 1, 1))


def test_concurrent_ensure_creates_each_partition_once() -> None:
    callers = 8
    barrier = threading.Barrier(callers)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(partitions.ensure_partitions(months_ahead=5, now=utc(2031, 3, 2)))
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    created = sorted(name for result in results for name in result)
    assert created == [f"logs_requestlog_p2031_{m:02d}" for m in range(3, 9)]  # each once, by one caller
    assert names() == created


def test_rows_land_in_their_month_across_the_boundary() -> None:
    partitions.ensure_partitions(months_ahead=1, now=utc(2031, 1, 15))
    last_of_january = RequestLog.objects.create(created_at=utc(2031, 1, 31, 23, 59, 59, 999999), outcome="ok")
    first_of_february = RequestLog.objects.create(created_at=utc(2031, 2, 1), outcome="ok")

    with connection.cursor() as cursor:
        cursor.execute("SELECT id, tableoid::regclass::text FROM logs_requestlog WHERE created_at >= '2031-01-01'")
        where = dict(cursor.fetchall())

    assert where == {last_of_january.pk: "logs_requestlog_p2031_01", first_of_february.pk: "logs_requestlog_p2031_02"}
    # The ORM and its single-column primary key work on the partitioned table.
    assert RequestLog.objects.get(pk=first_of_february.pk).created_at == utc(2031, 2, 1)


def test_rows_in_default_move_into_the_new_partition() -> None:
    stray = [
        RequestLog.objects.create(created_at=utc(2033, 5, day), outcome="timeout", request_id=uuid.uuid4())
        for day in (1, 15, 31)
    ]
    RequestLog.objects.create(created_at=utc(2033, 6, 1), outcome="ok")  # June has no partition yet either
    assert rows_by_partition()["logs_requestlog_default"] == 4

    created = partitions.ensure_partitions(months_ahead=0, now=utc(2033, 5, 10))

    # May was asked for; June had rows waiting in DEFAULT, so it was created too.
    assert created == ["logs_requestlog_p2033_05", "logs_requestlog_p2033_06"]
    counts = rows_by_partition()
    assert counts["logs_requestlog_p2033_05"] == 3
    assert counts["logs_requestlog_p2033_06"] == 1
    assert "logs_requestlog_default" not in counts
    assert {r.request_id for r in RequestLog.objects.filter(outcome="timeout")} == {r.request_id for r in stray}


def test_retention_drops_whole_months() -> None:
    partitions.ensure_partitions(months_ahead=4, now=utc(2020, 1, 10))  # 2020-01 .. 2020-05
    for month in range(1, 6):
        RequestLog.objects.create(created_at=utc(2020, month, 10), outcome="ok")

    # In 2020-08, keeping 4 full months besides the current one keeps April onwards.
    dropped = partitions.drop_partitions(older_than_months=4, now=utc(2020, 8, 20))

    assert dropped == ["logs_requestlog_p2020_01", "logs_requestlog_p2020_02", "logs_requestlog_p2020_03"]
    assert names("logs_requestlog_p2020") == ["logs_requestlog_p2020_04", "logs_requestlog_p2020_05"]
    assert sorted(r.created_at.month for r in RequestLog.objects.filter(created_at__year=2020)) == [4, 5]
    with connection.cursor() as cursor:  # detached and dropped, not left behind as tables
        cursor.execute("SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname LIKE 'logs_requestlog_p2020_0%%'")
        assert cursor.fetchone()[0] == 2
    assert partitions.drop_partitions(older_than_months=4, now=utc(2020, 8, 20)) == []


def test_retention_detaches_concurrently_without_a_default_partition() -> None:
    partitions.ensure_partitions(months_ahead=1, now=utc(2020, 1, 10))
    RequestLog.objects.create(created_at=utc(2020, 1, 10), outcome="ok")
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE logs_requestlog DETACH PARTITION logs_requestlog_default")
    try:
        dropped = partitions.drop_partitions(older_than_months=1, now=utc(2020, 6, 1))
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE logs_requestlog ATTACH PARTITION logs_requestlog_default DEFAULT")

    assert dropped == ["logs_requestlog_p2020_01", "logs_requestlog_p2020_02"]
    assert not RequestLog.objects.filter(created_at__year=2020).exists()


def test_time_window_query_touches_only_its_partition() -> None:
    partitions.ensure_partitions(months_ahead=5, now=utc(2031, 1, 15))  # 2031-01 .. 2031-06
    window = RequestLog.objects.window(utc(2031, 3, 10, 10), utc(2031, 3, 10, 11)).newest_first()[:100]

    plan = window.explain()

    assert "logs_requestlog_p2031_03" in plan
    others = [p.name for p in partitions.list_partitions() if p.name != "logs_requestlog_p2031_03"]
    assert [name for name in others if name in plan] == []


def test_window_across_a_month_boundary_touches_both_months() -> None:
    partitions.ensure_partitions(months_ahead=5, now=utc(2031, 1, 15))
    plan = RequestLog.objects.window(utc(2031, 3, 31, 23), utc(2031, 4, 1, 1)).newest_first()[:100].explain()

    touched = [p.name for p in partitions.list_partitions() if p.name in plan]
    assert touched == ["logs_requestlog_p2031_03", "logs_requestlog_p2031_04"]


def test_list_partitions_reports_sizes_and_estimates() -> None:
    partitions.ensure_partitions(months_ahead=0, now=utc(2031, 7, 1))
    RequestLog.objects.bulk_create([RequestLog(created_at=utc(2031, 7, 2), outcome="ok") for _ in range(500)])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE logs_requestlog_p2031_07")

    july = next(p for p in partitions.list_partitions() if p.name == "logs_requestlog_p2031_07")

    assert july.estimated_rows == 500
    assert july.size_bytes > 0
    assert (july.lower, july.upper) == (utc(2031, 7, 1), utc(2031, 8, 1))
