"""/metrics: parsed with prometheus_client's parser; access by token, staff login or allowed network;
stdio process metrics sampled with psutil."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from types import SimpleNamespace

import psutil
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from logs.models import Outcome, RequestLog
from monitoring.metrics import floor_to, rollup_minutes, series
from monitoring.models import MetricBucket
from servers.gateway import metrics
from servers.gateway.metrics import ProcessSample
from tests.conftest import wait_for
from tests.servers.api_helpers import make_server, plain_user_client, staff_client, token_client

URL = "/metrics"
LATENCIES = [3.0, 7.0, 11.0, 40.0, 120.0]


def percentile_cont(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@pytest.fixture
def data(db: None) -> None:
    alpha = make_server("alpha", status="up")
    beta = make_server("beta", status="down")
    # Buckets of the current minute: always after midnight UTC, so always in today's counter.
    now = floor_to(timezone.now(), "minute")
    MetricBucket.objects.create(
        server_id=alpha.pk, server_slug="alpha", tool="echo", bucket=now, count=5, ok=4, timeout=1, latency_avg=36.2
    )
    MetricBucket.objects.create(server_id=beta.pk, server_slug="beta", tool="fetch", bucket=now, count=2, ok=2)
    MetricBucket.objects.create(  # yesterday: not in today's counter
        server_id=alpha.pk, server_slug="alpha", tool="echo", bucket=now - timedelta(days=1, minutes=1), count=99
    )
    RequestLog.objects.bulk_create(
        RequestLog(
            created_at=timezone.now() - timedelta(seconds=30 + i),
            server_id=alpha.pk,
            server_slug="alpha",
            tool="echo",
            outcome="ok",
            latency_ms=latency,
        )
        for i, latency in enumerate(LATENCIES)
    )


def scrape(client: Client, **extra: str) -> dict[str, object]:
    response = client.get(URL, **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def samples(family: object, name: str) -> dict[tuple, float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name == name}


@pytest.mark.django_db
def test_exposition_parses_and_holds_the_figures(data: None) -> None:
    families = scrape(token_client())

    calls = families["mcphub_tool_calls"]
    assert calls.type == "counter"
    totals = samples(calls, "mcphub_tool_calls_total")
    assert totals[(("outcome", "ok"), ("server", "alpha"), ("tool", "echo"))] == 4
    assert totals[(("outcome", "timeout"), ("server", "alpha"), ("tool", "echo"))] == 1
    assert totals[(("outcome", "ok"), ("server", "beta"), ("tool", "fetch"))] == 2
    assert sum(totals.values()) == 7  # yesterday's 99 are not counted

    latency = families["mcphub_tool_latency_seconds"]
    assert latency.type == "summary"
    alpha = (("server", "alpha"), ("tool", "echo"))
    assert samples(latency, "mcphub_tool_latency_seconds_count")[alpha] == 5
    assert samples(latency, "mcphub_tool_latency_seconds_sum")[alpha] == pytest.approx(5 * 36.2 / 1000)
    quantiles = samples(latency, "mcphub_tool_latency_seconds")
    for q in (0.5, 0.95, 0.99):
        assert quantiles[(("quantile", str(q)), *alpha)] == pytest.approx(percentile_cont(LATENCIES, q) / 1000)

    status = samples(families["mcphub_server_status"], "mcphub_server_status")
    assert status[(("server", "alpha"), ("status", "up"))] == 1
    assert status[(("server", "alpha"), ("status", "down"))] == 0
    assert status[(("server", "beta"), ("status", "down"))] == 1
    assert len(status) == 2 * 4

    assert samples(families["mcphub_log_writer_queue_depth"], "mcphub_log_writer_queue_depth")[()] >= 0
    assert "mcphub_stdio_process_rss_bytes" in families


@pytest.mark.django_db
def test_every_outcome_is_a_label_from_the_log_through_the_rollup() -> None:
    server = make_server("gamma", status="up")
    outcomes = ["ok", "overloaded", "overloaded", "connection_lost", "upstream_down"]
    RequestLog.objects.bulk_create(
        RequestLog(server_id=server.pk, server_slug="gamma", tool="slow", outcome=outcome) for outcome in outcomes
    )
    rollup_minutes()

    totals = samples(scrape(token_client())["mcphub_tool_calls"], "mcphub_tool_calls_total")

    counted = {dict(labels)["outcome"]: value for labels, value in totals.items()}
    assert counted == {
        "ok": 1,
        "tool_error": 0,
        "protocol_error": 0,
        "timeout": 0,
        "overloaded": 2,
        "connection_lost": 1,
        "upstream_down": 1,
        "denied": 0,
    }
    assert set(counted) == set(Outcome.values)
    # Every outcome but ok is an error in the error rates.
    assert sum(point.errors for point in series("1h", server_ids=[server.pk]).points) == 4


@pytest.mark.django_db
def test_a_limited_token_sees_only_its_servers(data: None) -> None:
    families = scrape(token_client("beta"))

    servers = {s.labels["server"] for family in families.values() for s in family.samples if "server" in s.labels}
    assert servers == {"beta"}


@pytest.mark.django_db
def test_access(client: Client, django_user_model: type[User], admin_user: User, data: None, settings: object) -> None:
    refused = client.get(URL)
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert Client(HTTP_AUTHORIZATION="Bearer wrong").get(URL).status_code == 401
    assert plain_user_client(django_user_model).get(URL).status_code == 403
    scrape(staff_client(admin_user))

    settings.MCPHUB_METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "fd00::/8"]
    assert client.get(URL, REMOTE_ADDR="127.0.0.1").status_code == 401
    scrape(client, REMOTE_ADDR="10.1.2.3")
    scrape(client, REMOTE_ADDR="fd00::1")
    # A wrong token is refused even from an allowed network.
    assert Client(HTTP_AUTHORIZATION="Bearer wrong").get(URL, REMOTE_ADDR="10.1.2.3").status_code == 401


@pytest.mark.django_db
def test_stdio_process_metrics_in_the_exposition(data: None, monkeypatch: pytest.MonkeyPatch) -> None:
    alpha_id = make_server("gamma").pk
    sample = ProcessSample(alpha_id, "gamma", 4242, 12.5, 50_000_000, 3, 61.0)
    pool = SimpleNamespace(config=SimpleNamespace(id=alpha_id, slug="gamma"), instances=lambda: [])
    monkeypatch.setattr(metrics, "serving_pools", lambda: [pool])
    monkeypatch.setattr(metrics, "sample_pools", lambda pools: [sample] if pools else [])

    families = scrape(token_client())

    labels = (("pid", "4242"), ("server", "gamma"))
    assert samples(families["mcphub_stdio_process_cpu_percent"], "mcphub_stdio_process_cpu_percent")[labels] == 12.5
    assert samples(families["mcphub_stdio_process_rss_bytes"], "mcphub_stdio_process_rss_bytes")[labels] == 5e7
    restarts = samples(families["mcphub_stdio_process_restarts"], "mcphub_stdio_process_restarts_total")
    assert restarts[labels] == 3
    uptime = samples(families["mcphub_stdio_process_uptime_seconds"], "mcphub_stdio_process_uptime_seconds")
    assert uptime[labels] == 61.0
    assert "gamma" not in str(scrape(token_client("alpha")))


def fake_session(pid: int | None, transport: str = "stdio", returncode: int | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        config=SimpleNamespace(id=7, slug="busy", transport=transport),
        process=SimpleNamespace(pid=pid, returncode=returncode),
        stats=SimpleNamespace(restarts=2),
    )


def test_psutil_samples_a_real_process_tree() -> None:
    # A parent with a busy child: the sample covers the whole tree.
    script = (
        "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'while True: pass']); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        session = fake_session(parent.pid)
        wait_for(lambda: psutil.Process(parent.pid).children(), what="the busy child")
        first = metrics.sample(session)
        time.sleep(1.0)
        second = metrics.sample(session)
        assert first is not None and second is not None
        assert second.pid == parent.pid and second.slug == "busy" and second.restarts == 2
        assert second.rss_bytes > 5_000_000
        assert second.cpu_percent > 5  # the busy child, measured between the two samples
        assert 0.5 <= second.uptime_seconds < 60
        skipped = [fake_session(None), fake_session(parent.pid, transport="sse"), fake_session(1, returncode=0)]
        assert metrics.sample_sessions(skipped) == []
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
    assert metrics.sample(fake_session(parent.pid)) is None


def test_no_gateway_no_samples() -> None:
    assert metrics.serving_pools() == []
    families = list(metrics.PoolCollector().collect())
    assert families and all(family.samples == [] for family in families)
