"""`/` and `/servers/<slug>/`: staff only, complete without JavaScript (server-rendered figures and SVG)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from logs.models import RequestLog
from monitoring.dashboard import server_cards
from monitoring.metrics import floor_to
from monitoring.models import MetricBucket, StatusChange
from monitoring.services import clear_status_cache
from servers.models import McpServer, Tool
from servers.upstream import stderr

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_user("ops", password="x", is_staff=True))
    return client


@pytest.fixture
def server() -> McpServer:
    now = timezone.now()
    server = McpServer.objects.create(
        name="Time",
        slug="time",
        transport="streamable_http",
        url="http://127.0.0.1:1/mcp",
        status="down",
        status_changed_at=now,
    )
    Tool.objects.create(server=server, name="get_current_time", description="What time is it")
    StatusChange.objects.create(
        server=server, changed_at=now, old="up", new="down", reason="3 consecutive failed checks"
    )
    minute = floor_to(now, MetricBucket.Resolution.MINUTE)
    for resolution, bucket in (("minute", minute - timedelta(minutes=2)), ("hour", minute.replace(minute=0))):
        MetricBucket.objects.create(
            server_id=server.pk,
            server_slug="time",
            tool="get_current_time",
            resolution=resolution,
            bucket=bucket,
            count=40,
            ok=38,
            tool_error=2,
            latency_p50=3,
            latency_p95=9,
            latency_p99=15,
            latency_avg=4,
            latency_max=20,
        )
    RequestLog.objects.create(
        server_id=server.pk, server_slug="time", tool="get_current_time", outcome="ok", latency_ms=3.2
    )
    stderr.append_lines(server.pk, ["starting up", "listening on stdio"])
    clear_status_cache()
    return server


@pytest.mark.parametrize("path", ["/", "/servers/time/"])
def test_pages_need_a_staff_login(path: str, client: Client, server: McpServer) -> None:
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    client.force_login(get_user_model().objects.create_user("user", password="x"))
    assert client.get(path).status_code == 302


def test_dashboard_is_complete_without_javascript(staff: Client, server: McpServer) -> None:
    html = staff.get("/").content.decode()
    assert f'data-server-id="{server.pk}"' in html and 'data-status="down"' in html
    assert 'data-field="tools">1<' in html  # tool count
    assert 'data-field="calls_per_minute">8<' in html  # 40 calls over the 5-minute window
    assert 'data-field="error_rate">5.0 %<' in html
    assert 'data-field="p95_ms">9.0 ms<' in html
    assert "<polyline" in html and 'points="0.0,' in html  # the sparkline, drawn server-side
    assert 'data-total="down">1<' in html
    assert "3 consecutive failed checks" in html  # timeline
    assert "get_current_time" in html and "3.2 ms" in html  # live tail's first paint
    assert "monitoring/dashboard.js" in html and "monitoring/dashboard.css" in html


def test_server_page_has_charts_tools_stderr_and_admin_link(staff: Client, server: McpServer) -> None:
    response = staff.get("/servers/time/")
    assert response.status_code == 200
    html = response.content.decode()
    for window in ("1h", "24h", "7d"):
        assert f'id="window-{window}"' in html
    assert html.count('class="line-p95"') == 3 and 'class="bar-errors"' in html  # SVG charts
    assert "40 calls" in html and "2 errors" in html
    assert "get_current_time" in html and "What time is it" in html
    assert "listening on stdio" in html
    assert "3 consecutive failed checks" in html and 'status-down">down<' in html  # status timeline
    assert f"/admin/servers/mcpserver/{server.pk}/change/" in html


def test_unknown_server_is_404(staff: Client) -> None:
    assert staff.get("/servers/nope/").status_code == 404


def test_empty_dashboard_invites_to_register(staff: Client) -> None:
    assert "Register one in the admin" in staff.get("/").content.decode()


def test_the_server_page_builds_only_its_own_card(server: McpServer) -> None:
    other = McpServer.objects.create(name="Other", slug="other", transport="streamable_http", url="http://x/mcp")
    MetricBucket.objects.create(
        server_id=other.pk,
        server_slug="other",
        tool="t",
        resolution="minute",
        bucket=floor_to(timezone.now(), MetricBucket.Resolution.MINUTE),
        count=7,
        ok=7,
    )
    clear_status_cache()

    [card] = server_cards(server_id=server.pk)
    assert (card["id"], sum(card["spark"]), card["tools"]) == (server.pk, 40, 1)
    assert {card["id"] for card in server_cards()} == {server.pk, other.pk}
