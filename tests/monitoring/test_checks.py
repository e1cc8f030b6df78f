"""Health checks against real fixture servers: records, transitions, flapping, locking, fan-out, worker + beat."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from monitoring import checks, tasks
from monitoring.models import HealthCheck, StatusChange
from servers.models import McpServer
from tests.conftest import free_port, http_fixture_server, run_celery_beat, wait_for
from tests.monitoring.status_helpers import queued_tasks, set_status, stdio_server


def changes(server: McpServer) -> list[tuple[str, str]]:
    return list(StatusChange.objects.filter(server=server).order_by("changed_at", "id").values_list("old", "new"))


@pytest.mark.django_db(transaction=True)
def test_a_check_of_a_working_server_records_it_up() -> None:
    server = stdio_server("fx")

    check = checks.run_health_check(server.pk)

    assert check is not None and check.ok, check.error if check else None
    assert check.era == "stateless" and check.latency_ms is not None and check.latency_ms > 0
    server.refresh_from_db()
    assert server.status == "up" and server.last_checked_at == check.checked_at
    assert changes(server) == [("unknown", "up")]


@pytest.mark.django_db(transaction=True)
def test_a_silent_server_goes_from_unknown_to_down_after_three_failed_checks() -> None:
    server = stdio_server("silent", "--silent", connect_timeout=1)

    statuses = []
    for _ in range(3):
        check = checks.run_health_check(server.pk)
        assert check is not None and not check.ok
        server.refresh_from_db()
        statuses.append(server.status)

    assert statuses == ["unknown", "unknown", "down"]
    assert changes(server) == [("unknown", "down")]
    assert "no connection within 1 s" in StatusChange.objects.get().reason
    assert HealthCheck.objects.filter(server=server, ok=False).count() == 3


@pytest.mark.django_db(transaction=True)
def test_flapping_records_each_change_exactly_once() -> None:
    """An HTTP fixture server on a fixed port, started and stopped between checks."""
    port = free_port()
    server = McpServer.objects.create(
        name="flappy", slug="flappy", transport="streamable_http", url=f"http://127.0.0.1:{port}/mcp", connect_timeout=5
    )

    def check_times(count: int) -> None:
        for _ in range(count):
            assert checks.run_health_check(server.pk) is not None

    with http_fixture_server(port=port):
        check_times(1)  # unknown -> up
    check_times(3)  # up -> degraded -> (degraded) -> down
    with http_fixture_server(port=port):
        check_times(3)  # down -> degraded -> (degraded) -> up
    check_times(3)  # up -> degraded -> (degraded) -> down

    assert changes(server) == [
        ("unknown", "up"),
        ("up", "degraded"),
        ("degraded", "down"),
        ("down", "degraded"),
        ("degraded", "up"),
        ("up", "degraded"),
        ("degraded", "down"),
    ]
    assert HealthCheck.objects.filter(server=server).count() == 10
    # Reachable (again): tools re-discovered, on unknown -> up and on down -> degraded.
    assert [t[1] for t in queued_tasks() if t[0] == "servers.tasks.discover_server"].count([server.pk]) == 2


@pytest.mark.django_db(transaction=True)
def test_one_server_is_never_checked_twice_at_once() -> None:
    server = stdio_server("silent", "--silent", connect_timeout=2)
    results: list[object] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            barrier.wait()
            results.append(checks.run_health_check(server.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(result is None for result in results) == [False, True]  # one ran, one was skipped
    assert HealthCheck.objects.filter(server=server).count() == 1
    assert cache.get(checks.lock_key(server.pk)) is None  # released


@pytest.mark.django_db(transaction=True)
def test_fan_out_queues_due_servers_once_with_an_expiry() -> None:
    now = timezone.now()
    due = stdio_server("due", health_check_interval=30, last_checked_at=now - timedelta(seconds=31))
    never = stdio_server("never")
    stdio_server("fresh", health_check_interval=30, last_checked_at=now - timedelta(seconds=5))
    stdio_server("off", enabled=False)

    assert tasks.schedule_checks() == 2
    assert tasks.schedule_checks() == 0  # still queued: not again

    queued = [t for t in queued_tasks() if t[0] == "monitoring.tasks.check_server"]
    assert sorted(t[1] for t in queued) == sorted([s.pk] for s in (due, never))  # not `fresh`, not `off`
    assert all(t[2]["expires"] for t in queued)  # a late check is dropped, not run


@pytest.mark.django_db(transaction=True)
def test_a_scheduled_check_that_is_no_longer_due_is_skipped() -> None:
    server = stdio_server("fx", last_checked_at=timezone.now())

    assert checks.run_health_check(server.pk, due_only=True) is None
    assert not HealthCheck.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_stale_servers_become_unknown() -> None:
    server = stdio_server("fx", health_check_interval=10)
    HealthCheck.objects.create(server=server, checked_at=timezone.now() - timedelta(seconds=40), ok=True, latency_ms=1)
    McpServer.objects.filter(pk=server.pk).update(last_checked_at=timezone.now() - timedelta(seconds=40))
    set_status(server, "up")

    assert checks.mark_stale() == 1
    assert checks.mark_stale() == 0

    server.refresh_from_db()
    assert server.status == "unknown"
    assert "stale" in StatusChange.objects.get().reason


@pytest.mark.django_db
def test_prune_deletes_old_checks_only() -> None:
    server = stdio_server("fx")
    now = timezone.now()
    for days in (1, 6, 8, 30):
        HealthCheck.objects.create(server=server, checked_at=now - timedelta(days=days), ok=True)

    assert checks.prune(7, batch=1) == 2
    assert HealthCheck.objects.count() == 2


@pytest.mark.slow
def test_worker_and_beat_take_a_dead_server_down(celery_worker) -> None:
    """Real beat (fan-out every second) and a real worker: a silent server goes down, recorded once."""
    silent = stdio_server("silent", "--silent", connect_timeout=1, health_check_interval=1)
    alive = stdio_server("alive", health_check_interval=1)
    with run_celery_beat(MONITORING_SCHEDULE_SECONDS="1"):
        wait_for(lambda: McpServer.objects.get(pk=silent.pk).status == "down", timeout=180, what="silent down")
        wait_for(lambda: McpServer.objects.get(pk=alive.pk).status == "up", timeout=60, what="alive up")
    assert changes(silent) == [("unknown", "down")]
    assert changes(alive)[0] == ("unknown", "up")
