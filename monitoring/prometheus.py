"""Prometheus text exposition at ``/metrics``, from the database (so every web process reports the same totals).

What is exposed, and how honest each figure is:

- ``mcphub_tool_calls_total{server,tool,outcome}``: a counter of the calls since 00:00 UTC today,
  summed from the minute buckets. It resets to zero at midnight, which Prometheus's ``rate()``
  and ``increase()`` handle as any counter reset; its ``_created`` is that midnight. Calls reach
  it when the rollup runs (every minute), and calls logged after midnight for the day before are
  not counted.
- ``mcphub_tool_latency_seconds{server,tool}``: a summary. ``_count`` and ``_sum`` cover the same
  calls as the counter; the ``quantile`` samples (0.5, 0.95, 0.99) are computed by PostgreSQL
  (``percentile_cont``) over the request log of the last ``LATENCY_WINDOW`` only, like a client
  summary's sliding window. Quantiles cannot be aggregated across series: use them per series.
- ``mcphub_server_status{server,status}``: 1 for each server's current status, 0 for the others.
- ``mcphub_log_writer_*``: this process's request-log writer (queue depth, written, dropped).
- ``mcphub_stdio_process_*{server}``: CPU %, RSS, restarts and uptime of this process's stdio
  upstreams, sampled with psutil (see :mod:`monitoring.process_metrics`).
- ``mcphub_upstream_instance*{server,instance}``: this process's upstream instances (pools):
  how many, in rotation or not, calls in flight, moving-average latency, calls and errors.

Access: a valid bearer token (a token limited to some servers sees only those), a staff login,
or a client address (``REMOTE_ADDR``) in ``MCPHUB_METRICS_ALLOWED_NETWORKS``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from functools import cache

from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from logs.models import TABLE as REQUEST_LOG_TABLE
from monitoring import instances, metrics, process_metrics
from monitoring.conf import monitoring_conf
from servers.models import McpServer, Status
from servers.tokens import TokenInfo, authenticate, bearer_secret

LATENCY_WINDOW = timedelta(minutes=5)
QUANTILES = (0.5, 0.95, 0.99)

QUANTILES_SQL = f"""
SELECT server_id, tool,
    percentile_cont(ARRAY[{", ".join(str(q) for q in QUANTILES)}]) WITHIN GROUP (ORDER BY latency_ms)
FROM {REQUEST_LOG_TABLE}
WHERE created_at >= %(since)s AND created_at < %(until)s AND server_id IS NOT NULL
GROUP BY server_id, tool
"""


class HubCollector(Collector):
    """Reads the figures at scrape time; ``server_ids`` None means every server."""

    def __init__(self, server_ids: frozenset[int] | None = None, now: datetime | None = None) -> None:
        self.server_ids = server_ids
        self.now = now

    def collect(self) -> Iterator[Metric]:
        now = self.now or timezone.now()
        servers = McpServer.objects.order_by("slug")
        if self.server_ids is not None:
            servers = servers.filter(pk__in=self.server_ids)
        yield from self._calls(now)
        yield self._status(servers)
        yield from _writer_metrics()
        yield from _process_metrics(self.server_ids)
        yield from _instance_metrics(self.server_ids)

    def _calls(self, now: datetime) -> Iterable[Metric]:
        midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        totals = metrics.totals_since(midnight, self.server_ids)
        calls = CounterMetricFamily(
            "mcphub_tool_calls",
            "Calls through the hub since 00:00 UTC, by outcome.",
            labels=["server", "tool", "outcome"],
        )
        latency = Metric("mcphub_tool_latency_seconds", "Call latency (quantiles: last 5 minutes).", "summary")
        quantiles = self._quantiles(now)
        for row in totals:
            labels = {"server": row["slug"], "tool": row["tool"]}
            for outcome in metrics.OUTCOME_COLUMNS:
                value = row[f"{outcome}_calls"] or 0
                calls.add_metric([row["slug"], row["tool"], outcome], value, created=midnight.timestamp())
            for q, value in zip(QUANTILES, quantiles.pop((row["server_id"], row["tool"]), ()), strict=False):
                latency.add_sample(latency.name, {**labels, "quantile": str(q)}, value / 1000)
            latency.add_sample(latency.name + "_count", labels, row["calls"] or 0)
            latency.add_sample(latency.name + "_sum", labels, (row["latency_sum"] or 0) / 1000)
        return [calls, latency]

    def _quantiles(self, now: datetime) -> dict[tuple[int, str], list[float]]:
        with connection.cursor() as cursor:
            cursor.execute(QUANTILES_SQL, {"since": now - LATENCY_WINDOW, "until": now})
            return {
                (server_id, tool): values
                for server_id, tool, values in cursor.fetchall()
                if self.server_ids is None or server_id in self.server_ids
            }

    @staticmethod
    def _status(servers: QuerySet[McpServer]) -> Metric:
        gauge = GaugeMetricFamily(
            "mcphub_server_status", "1 for the server's current status (health checks).", labels=["server", "status"]
        )
        for slug, current in servers.values_list("slug", "status"):
            for status in Status.values:
                gauge.add_metric([slug, status], 1.0 if status == current else 0.0)
        return gauge


def _writer_metrics() -> Iterable[Metric]:
    from logs import writer as log_writer

    active = log_writer.current_writer()
    depth = GaugeMetricFamily("mcphub_log_writer_queue_depth", "Request-log records queued in this process.")
    written = CounterMetricFamily("mcphub_log_writer_written", "Request-log records written by this process.")
    dropped = CounterMetricFamily("mcphub_log_writer_dropped", "Records dropped by this process (queue full).")
    depth.add_metric([], active.queue_depth if active is not None else 0)
    written.add_metric([], active.stats.written if active is not None else 0)
    dropped.add_metric([], active.stats.dropped if active is not None else 0)
    return [depth, written, dropped]


def _process_metrics(server_ids: frozenset[int] | None) -> Iterable[Metric]:
    labels = ["server", "pid"]
    cpu = GaugeMetricFamily(
        "mcphub_stdio_process_cpu_percent", "CPU % of a stdio upstream's process tree.", labels=labels
    )
    rss = GaugeMetricFamily("mcphub_stdio_process_rss_bytes", "Resident memory of the process tree.", labels=labels)
    restarts = CounterMetricFamily("mcphub_stdio_process_restarts", "Restarts of the upstream session.", labels=labels)
    uptime = GaugeMetricFamily(
        "mcphub_stdio_process_uptime_seconds", "Seconds since the process started.", labels=labels
    )
    for sample in process_metrics.sample_gateway():
        if server_ids is not None and sample.server_id not in server_ids:
            continue
        values = [sample.slug, str(sample.pid)]
        cpu.add_metric(values, sample.cpu_percent)
        rss.add_metric(values, sample.rss_bytes)
        restarts.add_metric(values, sample.restarts)
        uptime.add_metric(values, sample.uptime_seconds)
    return [cpu, rss, restarts, uptime]


def _instance_metrics(server_ids: frozenset[int] | None) -> Iterable[Metric]:
    labels = ["server", "instance"]
    count = GaugeMetricFamily("mcphub_upstream_instances", "Running instances of a server.", labels=["server"])
    healthy = GaugeMetricFamily("mcphub_upstream_instance_healthy", "1: in rotation.", labels=labels)
    in_flight = GaugeMetricFamily("mcphub_upstream_instance_in_flight", "Calls in flight.", labels=labels)
    latency = GaugeMetricFamily(
        "mcphub_upstream_instance_latency_seconds", "Moving average of the instance's call latency.", labels=labels
    )
    calls = CounterMetricFamily("mcphub_upstream_instance_calls", "Calls answered by the instance.", labels=labels)
    errors = CounterMetricFamily("mcphub_upstream_instance_errors", "Calls failed on the instance.", labels=labels)
    for pool in instances.gateway_pools():
        if server_ids is not None and pool.config.id not in server_ids:
            continue
        members = pool.instances()
        count.add_metric([pool.config.slug], len(members))
        for member in members:
            values = [pool.config.slug, member.label]
            healthy.add_metric(values, 1.0 if member.healthy else 0.0)
            in_flight.add_metric(values, member.in_flight)
            latency.add_metric(values, member.latency_ms / 1000)
            calls.add_metric(values, member.calls)
            errors.add_metric(values, member.errors)
    return [count, healthy, in_flight, latency, calls, errors]


def exposition(server_ids: frozenset[int] | None = None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(server_ids))
    return generate_latest(registry)


# --- the view ----------------------------------------------------------------------------------------


@cache
def _networks(spec: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in spec)


def address_allowed(address: str, networks: Iterable[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _networks(tuple(networks)))


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: 401 without credentials, 403 for a logged-in non-staff user."""
    header = request.headers.get("Authorization")
    server_ids: frozenset[int] | None = None
    if header:
        secret = bearer_secret(header)
        token: TokenInfo | None = authenticate(secret) if secret else None
        if token is None:
            return _refuse(401, "invalid or expired token")
        server_ids = token.server_ids
    elif not address_allowed(request.META.get("REMOTE_ADDR", ""), monitoring_conf().metrics_allowed_networks):
        if not request.user.is_authenticated:
            return _refuse(401, "a bearer token is required")
        if not request.user.is_staff:
            return _refuse(403, "staff only")
    return HttpResponse(exposition(server_ids), content_type=CONTENT_TYPE_PLAIN_0_0_4)


def _refuse(status: int, reason: str) -> HttpResponse:
    response = HttpResponse(reason + "\n", status=status, content_type="text/plain")
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response
