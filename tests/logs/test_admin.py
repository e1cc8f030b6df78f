"""The request-log admin: read-only, windowed, never a full COUNT(*), and a partitions page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from logs import admin as logs_admin
from logs.models import RequestLog

CHANGELIST = "/admin/logs/requestlog/"

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client, admin_user: User) -> Client:
    client.force_login(admin_user)
    return client


def log(minutes_ago: float = 0, **fields: object) -> RequestLog:
    fields.setdefault("outcome", "ok")
    return RequestLog.objects.create(created_at=timezone.now() - timedelta(minutes=minutes_ago), **fields)


def test_changelist_shows_the_last_24_hours_without_counting_the_table(staff: Client) -> None:
    log(minutes_ago=5, tool="recent_tool", server_slug="time")
    log(minutes_ago=3 * 24 * 60, tool="ancient_tool", server_slug="time")

    with CaptureQueriesContext(connection) as queries:
        response = staff.get(CHANGELIST)

    assert response.status_code == 200
    page = response.content.decode()
    assert "recent_tool" in page
    assert "ancient_tool" not in page
    assert "last 24 hours" in page
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counts, "the paginator counts (bounded)"
    for sql in counts:
        assert "LIMIT" in sql.upper() and "created_at" in sql, sql  # bounded and windowed, never the whole table
    assert not any("DISTINCT" in q["sql"].upper() for q in queries)  # no date-hierarchy scan


def test_date_drill_down_reaches_older_rows(staff: Client) -> None:
    old = log(minutes_ago=3 * 24 * 60, tool="ancient_tool")
    day = timezone.localtime(old.created_at)

    response = staff.get(
        CHANGELIST, {"created_at__year": day.year, "created_at__month": day.month, "created_at__day": day.day}
    )

    assert response.status_code == 200
    assert "ancient_tool" in response.content.decode()


def test_filters_and_search(staff: Client) -> None:
    log(tool="get_time", server_slug="time", outcome="ok")
    log(tool="fetch", server_slug="fetch", outcome="timeout", error="upstream silent")

    def tools(**params: str) -> list[str]:
        response = staff.get(CHANGELIST, params)
        assert response.status_code == 200
        return sorted(row.tool for row in response.context["cl"].result_list)

    assert tools() == ["fetch", "get_time"]
    assert tools(server="fetch") == ["fetch"]
    assert tools(tool="get_time") == ["get_time"]
    assert tools(outcome__exact="timeout") == ["fetch"]
    assert tools(q="silent") == ["fetch"]
    assert "get_time" in staff.get(CHANGELIST).content.decode()  # offered as a filter choice


def test_list_and_detail_show_the_tokens_name(staff: Client) -> None:
    row = log(tool="get_time", token_id=7, token_name="ci-bot")
    log(tool="fetch", token_id=8, token_name="laptop")

    listing = staff.get(CHANGELIST)
    assert '<td class="field-token_name">ci-bot</td>' in listing.content.decode()
    assert [r.tool for r in staff.get(CHANGELIST, {"token": "ci-bot"}).context["cl"].result_list] == ["get_time"]
    detail = staff.get(f"{CHANGELIST}{row.pk}/change/").content.decode()
    assert "Token name" in detail and "ci-bot" in detail


def test_read_only(staff: Client) -> None:
    row = log(tool="get_time")

    assert staff.get(CHANGELIST + "add/").status_code == 403
    assert staff.get(f"{CHANGELIST}{row.pk}/change/").status_code == 200  # view only
    assert staff.post(f"{CHANGELIST}{row.pk}/change/", {"tool": "changed"}).status_code == 403
    assert staff.post(f"{CHANGELIST}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    row.refresh_from_db()
    assert row.tool == "get_time"


def test_paginator_estimates_above_the_exact_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs_admin, "EXACT_COUNT_LIMIT", 5)
    RequestLog.objects.bulk_create([RequestLog(outcome="ok") for _ in range(3)])
    assert logs_admin.BoundedCountPaginator(RequestLog.objects.all(), 2).count == 3

    RequestLog.objects.bulk_create([RequestLog(outcome="ok") for _ in range(20)])
    estimated = logs_admin.BoundedCountPaginator(RequestLog.objects.all(), 2).count
    assert estimated >= 6  # past the limit: at least limit + 1, else the planner's estimate


def test_partitions_page(staff: Client) -> None:
    response = staff.get("/admin/logs/requestlog/partitions/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "logs_requestlog_default" in page
    assert f"logs_requestlog_p{timezone.now():%Y_%m}" in page
    assert "/admin/logs/requestlog/partitions/" in staff.get("/admin/logs/").content.decode()
    assert "/admin/logs/requestlog/partitions/" in staff.get(CHANGELIST).content.decode()


def test_partitions_page_needs_login(client: Client) -> None:
    assert client.get("/admin/logs/requestlog/partitions/").status_code == 302
