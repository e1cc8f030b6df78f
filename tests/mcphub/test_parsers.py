"""Request bodies of the REST API: JSON only; what PostgreSQL, the renderer or the parser cannot take is a 400."""

from __future__ import annotations

import json
import sys

import pytest
from django.contrib.auth.models import User
from django.test import Client

from servers.models import McpServer
from tests.servers.api_helpers import staff_client

URL = "/api/servers/"


@pytest.fixture
def staff(admin_user: User) -> Client:
    return staff_client(admin_user)


def server(**fields: object) -> dict[str, object]:
    return {"name": "x", "slug": "x", "command": sys.executable, **fields}


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [50_000, 33])
def test_deeply_nested_json_is_a_400_parse_error(staff: Client, depth: int) -> None:
    response = staff.post(URL, "[" * depth + "]" * depth, content_type="application/json")

    assert response.status_code == 400
    assert "nested deeper than 32 levels" in response.json()["detail"].lower()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (server(env={"A\x00": "1"}), "env", "Null characters are not allowed (at env.A\x00)."),
        (server(headers={"X": "a\x00b"}), "headers", "Null characters are not allowed (at headers.X)."),
        (
            server(tool_allowlist=["ok", "\x00"]),
            "tool_allowlist",
            "Null characters are not allowed (at tool_allowlist[1]).",
        ),
        (server(name="a\x00"), "name", "Null characters are not allowed."),
        ({"bogus\x00": 1}, "bogus\x00", "Null characters are not allowed."),
        (server(env={"\ud800": "1"}), "env", "Surrogate characters are not allowed (at env.\\ud800)."),
        ({"\udfff": 1}, "\\udfff", "Surrogate characters are not allowed."),
    ],
)
def test_characters_postgresql_cannot_store_are_a_400_naming_the_field(
    staff: Client, body: dict, field: str, reason: str
) -> None:
    response = staff.post(URL, json.dumps(body), content_type="application/json")  # ASCII: \u escapes

    assert response.status_code == 400
    assert response.json()[field] == [reason]
    assert not McpServer.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("media_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
def test_bodies_other_than_json_answer_415(staff: Client, media_type: str) -> None:
    response = staff.post(URL, "name=x&slug=x&enabled=0", content_type=media_type)

    assert response.status_code == 415
    assert media_type.split(";")[0] in response.json()["detail"]
    assert not McpServer.objects.exists()


@pytest.mark.django_db
def test_a_number_json_cannot_hold_is_a_400_naming_the_field(staff: Client) -> None:
    body = json.dumps(server()).replace("}", ', "call_timeout": 1e999}')

    response = staff.post(URL, body, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"call_timeout": ["Numbers must be finite."]}
