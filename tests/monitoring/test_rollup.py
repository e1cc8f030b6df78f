"""The metric rollup: percentiles checked against an independent computation, idempotence, late rows,
hour buckets from the log, retention, the Redis lock and the schedule."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache

from logs.models import Outcome, RequestLog
from mcphub.celery import app
from monitoring import metrics, tasks
from monitoring.conf import monitoring_conf
from monitoring.models import MetricBucket

# A fixed minute well inside a month (whichever partition holds it, DEFAULT included).
T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)
OUTCOMES = ("ok", "ok", "ok", *Outcome.values)  # every outcome, mostly ok


def percentile_cont(values: list[float], fraction: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation between the two nearest ranks."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def insert(rows: list[dict[str, object]]) -> list[RequestLog]:
    return RequestLog.objects.bulk_create(RequestLog(**row) for row in rows)


def known_rows(seed: int = 7, minutes: int = 3) -> list[dict[str, object]]:
    """Calls of two tools of server 1 and one tool of server 2, spread over `minutes` minutes from T0."""
    rng = random.Random(seed)
    rows = []
    for minute in range(minutes):
        for server_id, slug, tool, n in ((1, "alpha", "echo", 57), (1, "alpha", "sum", 13), (2, "beta", "echo", 1)):
            for _ in range(n):
                rows.append(
                    {
                        "created_at": T0 + timedelta(minutes=minute, seconds=rng.uniform(0, 59.999)),
                        "server_id": server_id,
                        "server_slug": slug,
                        "tool": tool,
                        "outcome": rng.choice(OUTCOMES),
                        "latency_ms": round(rng.lognormvariate(3, 1), 3),
                        "request_bytes": rng.randint(10, 500),
                        "response_bytes": rng.randint(10, 5000),
                    }
                )
    return rows


def expected(rows: list[dict[str, object]], resolution: str) -> dict[tuple, dict[str, object]]:
    """What the buckets must hold, computed in Python from the rows."""
    groups: dict[tuple, list[dict[str, object]]] = {}
    for row in rows:
        bucket = metrics.floor_to(row["created_at"], resolution)
        groups.setdefault((bucket, row["server_id"], row["tool"]), []).append(row)
    result = {}
    for key, group in groups.items():
        latencies = [row["latency_ms"] for row in group]
        result[key] = {
            "server_slug": group[0]["server_slug"],
            "count": len(group),
            **{outcome: sum(row["outcome"] == outcome for row in group) for outcome in metrics.OUTCOME_COLUMNS},
            "latency_avg": sum(latencies) / len(latencies),
            "latency_p50": percentile_cont(latencies, 0.5),
            "latency_p95": percentile_cont(latencies, 0.95),
            "latency_p99": percentile_cont(latencies, 0.99),
            "latency_max": max(latencies),
            "request_bytes": sum(row["request_bytes"] for row in group),
            "response_bytes": sum(row["response_bytes"] for row in group),
        }
    return result


def stored(resolution: str) -> dict[tuple, dict[str, object]]:
    fields = ["server_slug", "count", *metrics.OUTCOME_COLUMNS, "latency_avg", "latency_p50", "latency_p95"]
    fields += ["latency_p99", "latency_max", "request_bytes", "response_bytes"]
    return {
        (row["bucket"], row["server_id"], row["tool"]): {name: row[name] for name in fields}
        for row in MetricBucket.objects.filter(resolution=resolution).values("bucket", "server_id", "tool", *fields)
    }


def assert_matches(actual: dict[tuple, dict], wanted: dict[tuple, dict]) -> None:
    assert actual.keys() == wanted.keys()
    for key, values in wanted.items():
        for name, value in values.items():
            if isinstance(value, float):
                assert actual[key][name] == pytest.approx(value, rel=1e-9), (key, name)
            else:
                assert actual[key][name] == value, (key, name)


@pytest.mark.django_db
def test_minute_buckets_match_an_independent_computation() -> None:
    rows = known_rows()
    insert(rows)

    written = metrics.rollup_minutes(now=T0 + timedelta(minutes=2, seconds=30))

    wanted = expected(rows, "minute")
    assert written == len(wanted) == 9
    assert_matches(stored("minute"), wanted)
    single = stored("minute")[(T0, 2, "echo")]  # one call: every percentile is that call
    assert single["latency_p50"] == single["latency_p99"] == single["latency_max"]


@pytest.mark.django_db
def test_running_twice_gives_the_same_rows() -> None:
    insert(known_rows())
    now = T0 + timedelta(minutes=2, seconds=30)
    metrics.rollup_minutes(now=now)
    first = list(MetricBucket.objects.order_by("bucket", "server_id", "tool").values())

    metrics.rollup_minutes(now=now)

    assert list(MetricBucket.objects.order_by("bucket", "server_id", "tool").values()) == first


@pytest.mark.django_db
def test_a_late_row_updates_its_bucket_on_the_next_run() -> None:
    rows = known_rows(minutes=1)
    insert(rows)
    metrics.rollup_minutes(now=T0 + timedelta(seconds=50))
    late = {**rows[0], "created_at": T0 + timedelta(seconds=59.5), "latency_ms": 99_999.0, "outcome": "timeout"}
    insert([late])

    metrics.rollup_minutes(now=T0 + timedelta(minutes=4))  # T0 is within the redo window (5 minutes)

    assert_matches(stored("minute"), expected([*rows, late], "minute"))
    assert stored("minute")[(T0, 1, "echo")]["latency_max"] == 99_999.0


@pytest.mark.django_db
def test_minutes_past_the_redo_window_are_left_alone() -> None:
    rows = known_rows(minutes=1)
    insert(rows)
    metrics.rollup_minutes(now=T0)
    insert([{**rows[0], "created_at": T0 + timedelta(seconds=1)}])

    metrics.rollup_minutes(now=T0 + timedelta(minutes=monitoring_conf().rollup_redo_minutes + 1))

    assert stored("minute")[(T0, 1, "echo")]["count"] == 57


@pytest.mark.django_db
def test_rows_outside_servers_are_not_rolled_up() -> None:
    insert([{"created_at": T0, "server_id": None, "tool": "tools/call", "outcome": "denied"}])
    assert metrics.rollup_minutes(now=T0) == 0


@pytest.mark.django_db
def test_hour_buckets_come_from_the_log_not_from_minute_buckets() -> None:
    rows = known_rows(minutes=3)
    # And some calls in the next hour, which must get their own hour bucket.
    rows += [{**row, "created_at": row["created_at"] + timedelta(hours=1)} for row in known_rows(seed=8, minutes=1)]
    insert(rows)

    metrics.rollup_hours(now=T0 + timedelta(hours=1, minutes=30))

    wanted = expected(rows, "hour")
    assert len(wanted) == 6
    assert_matches(stored("hour"), wanted)
    assert not MetricBucket.objects.filter(resolution="minute").exists()


@pytest.mark.django_db
def test_rollup_refuses_unaligned_windows() -> None:
    with pytest.raises(ValueError, match="boundaries"):
        metrics.rollup("minute", T0 + timedelta(seconds=1), T0 + timedelta(minutes=1))
    with pytest.raises(ValueError, match="boundaries"):
        metrics.rollup("hour", T0, T0 + timedelta(minutes=1))


@pytest.mark.django_db
def test_retention() -> None:
    def make(resolution: str, age: timedelta) -> None:
        MetricBucket.objects.create(server_id=1, server_slug="a", tool=str(age), resolution=resolution, bucket=T0 - age)

    for age in (timedelta(days=1), timedelta(days=3)):
        make("minute", age)
    for age in (timedelta(days=3), timedelta(days=89), timedelta(days=91)):
        make("hour", age)

    assert metrics.prune(now=T0) == {"minute": 1, "hour": 1}

    left = sorted(MetricBucket.objects.values_list("resolution", "tool"))
    assert left == [("hour", "3 days, 0:00:00"), ("hour", "89 days, 0:00:00"), ("minute", "1 day, 0:00:00")]


@pytest.mark.django_db
def test_the_task_skips_while_another_run_holds_the_lock() -> None:
    lock = cache.lock("monitoring:lock:rollup_minutes", timeout=60)
    assert lock.acquire(blocking=False)
    try:
        assert tasks.rollup_minutes() is None
    finally:
        lock.release()
    assert tasks.rollup_minutes() == 0  # nothing logged in the last minutes of the test database
    assert tasks.rollup_hours() == 0
    assert tasks.prune_metrics() == {"minute": 0, "hour": 0}


def test_tasks_are_registered_and_scheduled() -> None:
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    for name in ("monitoring.tasks.rollup_minutes", "monitoring.tasks.rollup_hours", "monitoring.tasks.prune_metrics"):
        assert name in app.tasks
        assert name in scheduled


@pytest.mark.timeout(120)
def test_a_real_worker_runs_the_rollup(celery_worker: object) -> None:
    """The worker knows the task (autodiscovered in monitoring/tasks.py) and writes the buckets."""
    from django.utils import timezone

    from tests.conftest import wait_for

    now = timezone.now()
    insert([{**row, "created_at": now - timedelta(seconds=5)} for row in known_rows(minutes=1)[:10]])

    tasks.rollup_minutes.delay()

    wait_for(lambda: MetricBucket.objects.filter(resolution="minute").exists(), timeout=60, what="the rollup")
    assert sum(MetricBucket.objects.values_list("count", flat=True)) == 10
