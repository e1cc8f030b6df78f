"""GET /api/status/ with 100 registered servers: served from the Redis cache vs computed from PostgreSQL.

    .venv/bin/python benchmarks/status.py

Uses a scratch database (<name>_bench_status) on the hub's PostgreSQL and Redis
databases 13-15 (all dropped or flushed afterwards); fills a day of health checks
per server (30 s interval) and 15 minutes of per-tool metric buckets, then
times the view in-process (DRF's APIRequestFactory, staff user forced, JSON
rendered): cache hits, and misses (key deleted before each request, so every
request computes the overview from the database and stores it). Prints p50/p95
of both and the ratio. Targets: >= 50x, p50 from the cache <= 1 ms.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from scratch import REDIS_BASE_DB, scratch_database  # noqa: E402

SERVERS = 100
CHECKS_PER_SERVER = 2880  # one day at the default 30 s interval
TOOLS_PER_SERVER = 5
MINUTES = 15
HITS = 3000
MISSES = 200


def scratch_environment() -> tuple[str, str, dict[str, Any]]:
    """Create the scratch database; returns (database URL, Redis URL, psycopg connect args)."""
    return scratch_database("bench_status")


def drop_database(connect: dict[str, str | int | None]) -> None:
    import psycopg

    name = connect.pop("name")
    with psycopg.connect(dbname="postgres", autocommit=True, **connect) as conn:  # type: ignore[arg-type]
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fill() -> None:
    from django.utils import timezone

    from monitoring.models import HealthCheck, MetricBucket
    from servers.models import McpServer

    now = timezone.now()
    servers = McpServer.objects.bulk_create(
        McpServer(
            name=f"Server {i}",
            slug=f"server-{i}",
            transport="streamable_http",
            url=f"http://127.0.0.1:9/{i}",
            status="up" if i % 10 else "degraded",
            status_changed_at=now,
            last_checked_at=now,
        )
        for i in range(SERVERS)
    )
    for server in servers:
        HealthCheck.objects.bulk_create(
            (
                HealthCheck(
                    server=server,
                    checked_at=now - timedelta(seconds=30 * n),
                    ok=n % 50 != 7,
                    latency_ms=3.0 + n % 17,
                    era="stateless",
                )
                for n in range(CHECKS_PER_SERVER)
            ),
            batch_size=5000,
        )
    minute = now.replace(second=0, microsecond=0)
    MetricBucket.objects.bulk_create(
        (
            MetricBucket(
                server_id=server.pk,
                server_slug=server.slug,
                tool=f"tool_{t}",
                bucket=minute - timedelta(minutes=m),
                count=60,
                ok=57,
                tool_error=3,
                latency_avg=12.0,
                latency_p50=10.0,
                latency_p95=40.0 + t,
                latency_p99=80.0,
                latency_max=120.0,
            )
            for server in servers
            for t in range(TOOLS_PER_SERVER)
            for m in range(MINUTES)
        ),
        batch_size=5000,
    )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def timed(view: object, request_for: object, count: int, before: object = None) -> list[float]:
    samples = []
    for _ in range(count):
        if before is not None:
            before()  # type: ignore[operator]
        request = request_for()  # type: ignore[operator]
        started = time.perf_counter()
        response = view(request)  # type: ignore[operator]
        if hasattr(response, "render"):
            response.render()  # a DRF Response (the miss path); the hit path returns stored JSON
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.content
    return samples


def pct(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100)[int(q) - 1]


def main() -> None:
    url, redis_url, connect = scratch_environment()
    os.environ.update(DATABASE_URL=url, REDIS_URL=redis_url, DJANGO_SETTINGS_MODULE="mcphub.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.cache import cache
    from django.core.management import call_command
    from rest_framework.test import APIRequestFactory, force_authenticate

    from monitoring.api.views import StatusView
    from monitoring.services import STATUS_JSON_KEY, clear_status_cache

    try:
        print(f"scratch database {connect['name']}, Redis {redis_url} (+1, +2); filling...", flush=True)
        call_command("migrate", verbosity=0)
        cache.clear()
        fill()
        staff = User.objects.create_superuser("bench", password="unused-bench-password")
        factory = APIRequestFactory()
        view = StatusView.as_view()

        def request_for() -> object:
            request = factory.get("/api/status/")
            force_authenticate(request, user=staff)
            return request

        body = view(request_for())
        assert len(json.loads(body.content)["servers"]) == SERVERS
        timed(view, request_for, 50)  # warm up both paths
        timed(view, request_for, 10, before=lambda: clear_status_cache())

        misses = timed(view, request_for, MISSES, before=lambda: clear_status_cache())
        clear_status_cache()
        hits: list[float] = []
        while len(hits) < HITS:
            # Refill only when the 2 s TTL ran out; those requests are misses and not counted as hits.
            if cache.get(STATUS_JSON_KEY) is None:
                timed(view, request_for, 1)
                continue
            hits += timed(view, request_for, 1)
        print(
            f"{SERVERS} servers, {SERVERS * CHECKS_PER_SERVER} health checks, "
            f"{SERVERS * TOOLS_PER_SERVER * MINUTES} metric buckets; response {len(body.content)} bytes"
        )
        for label, samples in (("from the cache ", hits), ("from PostgreSQL", misses)):
            print(
                f"/api/status/ {label}: p50 {statistics.median(samples):7.3f} ms  "
                f"p95 {pct(samples, 95):7.3f} ms  ({len(samples)} requests)"
            )
        ratio = statistics.median(misses) / statistics.median(hits)
        print(f"cache vs database: {ratio:.1f}x at p50 (target >= 50x; cache p50 target <= 1 ms)")
    finally:
        from django.db import connections

        connections.close_all()
        for offset in range(3):
            redis.Redis.from_url(settings.REDIS_URL.rsplit("/", 1)[0] + f"/{REDIS_BASE_DB + offset}").flushdb()
        drop_database(connect)


if __name__ == "__main__":
    main()
