"""The dashboard in a real browser (Debian's Chromium driven by Playwright) against a live web process.

Logs in through the admin form, opens `/`, records a status change on the back end with the
monitoring service (so the real channel-layer event flows) and sees the server's card change
without a reload. Set DASHBOARD_SCREENSHOT=docs/dashboard.png to also write the README's picture.
"""

from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from logs.models import RequestLog
from monitoring.metrics import floor_to
from monitoring.models import HealthCheck, MetricBucket, StatusChange
from monitoring.status import apply_status
from servers.models import McpServer, Tool
from tests.conftest import hub_env, run_web

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "dashboard-e2e-password"

pytestmark = [pytest.mark.slow]

SERVERS = [  # slug, name, transport, status, tools, calls per minute, error share, p95
    ("time", "Time", "stdio", "up", ["get_current_time", "convert_time"], 42, 0.0, 4.0),
    ("fetch", "Fetch", "stdio", "degraded", ["fetch"], 12, 0.08, 840.0),
    (
        "everything",
        "Everything",
        "streamable_http",
        "up",
        ["echo", "add", "longRunningOperation", "sampleLLM"],
        25,
        0.01,
        18.0,
    ),
    ("github", "GitHub", "streamable_http", "up", ["search_repositories", "get_issue", "create_issue"], 9, 0.02, 220.0),
    ("search", "Web search", "sse", "unknown", ["search"], 0, 0.0, 0.0),
]


def populate() -> dict[str, McpServer]:
    """Servers in several states, an hour of minute buckets, recent calls and status changes."""
    rng = random.Random(7)
    now = timezone.now()
    minute = floor_to(now, MetricBucket.Resolution.MINUTE)
    servers: dict[str, McpServer] = {}
    for slug, name, transport, status, tools, rate, errors, p95 in SERVERS:
        fields = {"command": "/usr/bin/true"} if transport == "stdio" else {"url": f"https://{slug}.example/mcp"}
        server = McpServer.objects.create(
            name=name,
            slug=slug,
            transport=transport,
            status=status,
            status_changed_at=now - timedelta(minutes=30),
            last_checked_at=now,
            **fields,
        )
        servers[slug] = server
        for tool in tools:
            Tool.objects.create(server=server, name=tool)
        HealthCheck.objects.create(server=server, checked_at=now, ok=status != "down", latency_ms=p95 / 3 or None)
        for back in range(60):
            count = max(0, int(rate * (0.6 + 0.8 * rng.random()) * (1.4 if 20 < back < 30 else 1)))
            if not count:
                continue
            MetricBucket.objects.create(
                server_id=server.pk,
                server_slug=slug,
                tool=tools[0],
                resolution="minute",
                bucket=minute - timedelta(minutes=back),
                count=count,
                ok=count - int(count * errors),
                tool_error=int(count * errors),
                latency_p50=p95 / 3,
                latency_p95=p95,
                latency_p99=p95 * 1.4,
                latency_avg=p95 / 2.5,
                latency_max=p95 * 2,
            )
    for slug, old, new, reason, ago in [
        ("fetch", "up", "degraded", "slow: 1840 ms (threshold 1000 ms)", 30),
        ("github", "down", "up", "check ok (71 ms)", 42),
        ("github", "up", "down", "3 consecutive failed checks: connection refused", 55),
    ]:
        StatusChange.objects.create(
            server=servers[slug], changed_at=now - timedelta(minutes=ago), old=old, new=new, reason=reason
        )
    calls = [(s, t) for s, _, _, status, tools, *_ in SERVERS if status != "unknown" for t in tools]
    for i in range(24):
        slug, tool = rng.choice(calls)
        outcome = rng.choices(["ok", "tool_error", "timeout"], [0.9, 0.07, 0.03])[0]
        RequestLog.objects.create(
            created_at=now - timedelta(seconds=4 * i + rng.random()),
            server_id=servers[slug].pk,
            server_slug=slug,
            tool=tool,
            outcome=outcome,
            latency_ms=rng.uniform(1.5, 120) if outcome != "timeout" else 60000,
        )
    get_user_model().objects.create_superuser("admin", "admin@example.com", PASSWORD)
    return servers


def test_card_changes_live_after_a_status_change(
    transactional_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect, sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls below are plain sync ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    servers = populate()
    github = servers["github"]
    with run_web(hub_env()) as web, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1480, "height": 1000})
        page.goto(web.url + "/")  # redirected to the admin login
        page.fill("#id_username", "admin")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url(web.url + "/", timeout=30_000)
        card = page.locator(f'.card[data-server-id="{github.pk}"]')
        expect(card).to_have_attribute("data-status", "up")
        expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=30_000)
        page.evaluate("window.__sameDocument = true")  # gone if the page reloads

        now = timezone.now()
        for back in range(3):
            HealthCheck.objects.create(
                server=github, checked_at=now - timedelta(seconds=back), ok=False, error="connection refused"
            )
        # In a thread of its own: publishing the event needs a thread without Playwright's event loop.
        with ThreadPoolExecutor(1) as pool:
            change = pool.submit(apply_status, github.pk).result(timeout=60)
        assert change is not None and change.new == "down"

        expect(card).to_have_attribute("data-status", "down", timeout=15_000)
        expect(card.locator('[data-field="status"]')).to_have_text("down")
        expect(page.locator('[data-total="down"]')).to_have_text("1")
        # Only the status event adds to the timeline (the periodic figures do not): the event flowed.
        expect(page.locator("#timeline li").first).to_contain_text("github", timeout=15_000)
        expect(page.locator("#timeline li").first).to_contain_text("up → down")
        assert page.evaluate("window.__sameDocument") is True
        page.wait_for_timeout(1500)  # let the flash fade a little before the picture
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        if target := os.environ.get("DASHBOARD_SCREENSHOT"):
            page.screenshot(path=target, full_page=True)
        assert (tmp_path / "dashboard.png").stat().st_size > 10_000
        browser.close()
