"""GET /api/logs/: filters, newest first, cursor pagination, bounded windows, 400 with the reason."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from logs import partitions
from logs.models import Outcome, RequestLog
from logs.services import LogFilter
from tests.logs.conftest import utc

URL = "/api/logs/"


@pytest.fixture
def staff(client: Client, admin_user: User) -> Client:
    client.force_login(admin_user)
    return client


def log(minutes_ago: float = 0, **fields: object) -> RequestLog:
    fields.setdefault("outcome", "ok")
    return RequestLog.objects.create(created_at=timezone.now() - timedelta(minutes=minutes_ago), **fields)


@pytest.mark.django_db
def test_needs_a_staff_login(client: Client, django_user_model: type[User]) -> None:
    assert client.get(URL).status_code in (401, 403)
    client.force_login(django_user_model.objects.create_user("plain", password="x"))
    assert client.get(URL).status_code == 403


@pytest.mark.django_db
def test_default_window_is_the_last_24_hours_newest_first(staff: Client) -> None:
    old = log(minutes_ago=25 * 60, tool="old")
    middle = log(minutes_ago=60, tool="middle")
    new = log(minutes_ago=1, tool="new")

    response = staff.get(URL)

    assert response.status_code == 200
    assert [row["tool"] for row in response.json()["results"]] == ["new", "middle"]
    assert response.json()["results"][0]["request_id"] == str(new.request_id)
    assert old.pk not in [row["id"] for row in response.json()["results"]]
    assert middle.server_slug == ""


@pytest.mark.django_db
def test_filters(staff: Client) -> None:
    log(server_slug="time", server_id=1, tool="get_time", outcome="ok")
    log(server_slug="time", server_id=1, tool="convert", outcome="timeout")
    log(server_slug="fetch", server_id=2, tool="fetch", outcome="upstream_down", error_code=-32000)

    def tools(**params: str) -> list[str]:
        response = staff.get(URL, params)
        assert response.status_code == 200, response.content
        return sorted(row["tool"] for row in response.json()["results"])

    assert tools(server="time") == ["convert", "get_time"]
    assert tools(server_id="2") == ["fetch"]
    assert tools(tool="convert") == ["convert"]
    assert tools(outcome="upstream_down") == ["fetch"]
    assert tools(server="time", outcome="ok") == ["get_time"]
    assert tools(server="nope") == []


@pytest.mark.django_db
def test_every_outcome_is_a_filter_value(staff: Client) -> None:
    for outcome in Outcome.values:
        log(tool=f"call-{outcome}", outcome=outcome)

    for outcome in ("overloaded", "connection_lost", "upstream_down"):
        response = staff.get(URL, {"outcome": outcome})
        assert response.status_code == 200, response.content
        assert [row["tool"] for row in response.json()["results"]] == [f"call-{outcome}"]


@pytest.mark.django_db
def test_a_row_shows_the_tokens_id_and_name(staff: Client) -> None:
    log(tool="echo", token_id=7, token_name="ci-bot")

    [row] = staff.get(URL).json()["results"]

    assert (row["token_id"], row["token_name"]) == (7, "ci-bot")


@pytest.mark.django_db
def test_since_and_until(staff: Client) -> None:
    log(minutes_ago=120, tool="two-hours")
    log(minutes_ago=30, tool="half-hour")
    now = timezone.now()

    def tools(**params: str) -> list[str]:
        response = staff.get(URL, params)
        assert response.status_code == 200, response.content
        return [row["tool"] for row in response.json()["results"]]

    assert tools(since=(now - timedelta(hours=1)).isoformat()) == ["half-hour"]
    assert tools(until=(now - timedelta(hours=1)).isoformat()) == ["two-hours"]
    naive = (now - timedelta(hours=3)).replace(tzinfo=None).isoformat()  # no zone: UTC
    assert tools(since=naive, until=(now - timedelta(minutes=60)).strftime("%Y-%m-%dT%H:%M:%SZ")) == ["two-hours"]


@pytest.mark.django_db
def test_cursor_pagination_walks_every_row_once(staff: Client) -> None:
    for i in range(25):
        log(minutes_ago=i, tool=f"t{i:02d}")
    seen: list[str] = []
    url: str | None = URL + "?page_size=10"
    pages = 0
    while url:
        response = staff.get(url)
        assert response.status_code == 200
        seen += [row["tool"] for row in response.json()["results"]]
        url = response.json()["next"]
        pages += 1

    assert pages == 3
    assert seen == [f"t{i:02d}" for i in range(25)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field", "reason"),
    [
        ({"outcome": "fine"}, "outcome", "not a valid choice"),
        ({"since": "yesterday"}, "since", "wrong format"),
        ({"until": "2026-13-45T99:00"}, "until", "wrong format"),
        ({"server_id": "abc"}, "server_id", "valid integer"),
        ({"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "since", "earlier than until"),
        ({"since": "2026-01-01T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "since", "at most 31 days"),
        ({"outcom": "ok"}, "detail", "unknown query parameter(s): outcom"),
        ({"tool": "a\x00b"}, "tool", "Null characters are not allowed"),
        ({"until": ""}, "until", "wrong format"),  # an empty value is a bad one, not the default
        ({"page_size": "abc"}, "page_size", "valid integer"),
        ({"page_size": "-1"}, "page_size", "greater than or equal to 1"),
        ({"page_size": "0"}, "page_size", "greater than or equal to 1"),
        ({"page_size": "10^20"}, "page_size", "valid integer"),
        ({"page_size": str(10**20)}, "page_size", "less than or equal to 1000"),
        ({"cursor": "abc"}, "cursor", "Invalid cursor"),
        ({"cursor": "\x00"}, "cursor", "Invalid cursor"),
        ({"cursor": base64.b64encode(b"p=garbage").decode()}, "cursor", "Invalid cursor"),  # a forged position
    ],
)
def test_bad_filters_give_400_with_the_reason(staff: Client, params: dict[str, str], field: str, reason: str) -> None:
    response = staff.get(URL, params)

    assert response.status_code == 400
    body = response.json()
    message = body[field] if isinstance(body[field], str) else " ".join(body[field])
    assert reason in message


@pytest.mark.django_db(transaction=True)
def test_api_query_touches_only_the_window_partitions(scratch_partitions: None) -> None:
    partitions.ensure_partitions(months_ahead=5, now=utc(2031, 1, 15))
    since, until = utc(2031, 2, 14, 9), utc(2031, 2, 14, 10)

    plan = LogFilter(since=since, until=until, server="time", outcome="ok").queryset()[:100].explain()

    touched = [p.name for p in partitions.list_partitions() if p.name in plan]
    assert touched == ["logs_requestlog_p2031_02"]


@pytest.mark.django_db
def test_schema_documents_the_filters(staff: Client) -> None:
    schema = staff.get("/api/schema/").content.decode()

    assert "/api/logs/" in schema
    for name in ("since", "until", "server", "tool", "outcome", "cursor"):
        assert f"name: {name}" in schema
