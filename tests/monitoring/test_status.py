"""Status derivation (plain function) and the compare-and-set write with its side effects."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import connection

from monitoring.models import HealthCheck, StatusChange
from monitoring.services import STATUS_CACHE_KEY
from monitoring.status import Change, CheckSample, Thresholds, apply_status, derive_status
from servers.discovery import registry_version
from tests.monitoring.status_helpers import queued_tasks, set_status, stdio_server

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
T = Thresholds(degraded_latency_ms=1000, down_after=3, recent_checks=3, stale_factor=3)


def checks(*results: str, every: float = 30, latency: float = 5.0) -> list[CheckSample]:
    """Newest first: "ok", "fail" or a latency like "1500"."""
    samples = []
    for i, result in enumerate(results):
        at = NOW - timedelta(seconds=i * every)
        if result == "fail":
            samples.append(CheckSample(at, False, 10_000.0, "UpstreamTimeout: no answer"))
        elif result == "ok":
            samples.append(CheckSample(at, True, latency))
        else:
            samples.append(CheckSample(at, True, float(result)))
    return samples


def status_of(samples: list[CheckSample], interval: float = 30) -> str:
    return derive_status(samples, now=NOW, interval=interval, thresholds=T).status


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([], "unknown"),
        (["ok"], "up"),
        (["ok", "ok", "ok", "fail"], "up"),  # the failure is older than the last 3 checks
        (["fail"], "unknown"),  # never seen working, not yet N failures
        (["fail", "fail"], "unknown"),
        (["fail", "fail", "fail"], "down"),
        (["fail", "ok"], "degraded"),
        (["fail", "fail", "ok"], "degraded"),
        (["fail", "fail", "fail", "ok"], "down"),
        (["ok", "fail", "fail", "fail"], "degraded"),  # coming back
        (["ok", "ok", "fail"], "degraded"),
        (["1500", "ok"], "degraded"),  # slow
        (["999", "ok"], "up"),
    ],
)
def test_derive_status(samples: list[str], expected: str) -> None:
    assert status_of(checks(*samples)) == expected


def test_stale_checks_mean_unknown() -> None:
    samples = [CheckSample(NOW - timedelta(seconds=91), True, 5.0)]

    verdict = derive_status(samples, now=NOW, interval=30, thresholds=T)

    assert verdict.status == "unknown"
    assert "stale" in verdict.reason
    assert status_of([CheckSample(NOW - timedelta(seconds=89), True, 5.0)]) == "up"


def test_reasons_say_why() -> None:
    assert (
        "3 consecutive failed checks: UpstreamTimeout"
        in derive_status(checks("fail", "fail", "fail"), now=NOW, interval=30, thresholds=T).reason
    )
    assert "slow: 1500 ms" in derive_status(checks("1500"), now=NOW, interval=30, thresholds=T).reason


def record(server_id: int, *oks: bool) -> None:
    """Health checks ending now, oldest first."""
    from django.utils import timezone

    now = timezone.now()
    for i, ok in enumerate(oks):
        at = now - timedelta(seconds=len(oks) - i)
        error = "" if ok else "boom"
        HealthCheck.objects.create(server_id=server_id, checked_at=at, ok=ok, latency_ms=3.0, error=error)


@pytest.mark.django_db(transaction=True)
def test_a_change_is_recorded_once_with_its_side_effects() -> None:
    server = stdio_server("fx")
    version = registry_version()
    record(server.pk, True)

    async def apply_while_listening() -> tuple[Change | None, dict]:
        # Pub/sub: the listener must be subscribed, in one event loop, before the change is published.
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add("status", channel)
        change = await sync_to_async(apply_status, thread_sensitive=False)(server.pk)
        return change, await asyncio.wait_for(layer.receive(channel), timeout=20)

    change, event = async_to_sync(apply_while_listening)()

    assert change is not None and (change.old, change.new) == ("unknown", "up")
    assert apply_status(server.pk) is None  # nothing new: nothing written
    assert list(StatusChange.objects.values_list("old", "new")) == [("unknown", "up")]
    server.refresh_from_db()
    assert server.status == "up" and server.status_changed_at == change.changed_at
    assert registry_version() > version  # gateways reload their snapshot (breaker state)
    assert cache.get(STATUS_CACHE_KEY)["servers"][0]["status"] == "up"  # cache refreshed at once
    assert event["type"] == "status.changed"
    assert (event["slug"], event["old"], event["new"]) == ("fx", "unknown", "up")
    # Reachable for the first time (or again): its tools are re-discovered.
    assert ("servers.tasks.discover_server", [server.pk]) in [t[:2] for t in queued_tasks()]


@pytest.mark.django_db(transaction=True)
def test_going_down_does_not_rediscover() -> None:
    server = stdio_server("fx")
    set_status(server, "up")
    record(server.pk, False, False, False)

    change = apply_status(server.pk)

    assert change is not None and change.new == "down"
    assert "boom" in change.reason
    assert not [t for t in queued_tasks() if t[0] == "servers.tasks.discover_server"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_record_one_change() -> None:
    """Many threads derive the same change at once: the compare-and-set lets exactly one record it."""
    server = stdio_server("fx")
    record(server.pk, False, False, False)
    barrier = threading.Barrier(8)
    results: list[object] = []

    def write() -> None:
        try:
            barrier.wait()
            results.append(apply_status(server.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert len(results) == 8
    assert sum(result is not None for result in results) == 1
    assert list(StatusChange.objects.values_list("old", "new")) == [("unknown", "down")]


@pytest.mark.django_db(transaction=True)
def test_channel_layer_failure_never_breaks_a_change(settings) -> None:
    dead = {"hosts": [{"address": "redis://127.0.0.1:9/0"}]}  # nothing listens on port 9
    settings.CHANNEL_LAYERS = {"default": {**settings.CHANNEL_LAYERS["default"], "CONFIG": dead}}
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    server = stdio_server("fx")
    record(server.pk, True)
    try:
        change = apply_status(server.pk)
    finally:
        channel_layers.backends.clear()

    assert change is not None
    assert StatusChange.objects.count() == 1
