"""/api/tools/: read for tokens and staff, ?server= filter, staff toggle of ``enabled`` through the service."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client

from servers.models import Tool
from tests.servers.api_helpers import make_server, plain_user_client, staff_client, token_client

URL = "/api/tools/"


@pytest.fixture
def tools(db: None) -> dict[str, Tool]:
    alpha, beta = make_server("alpha"), make_server("beta")
    return {
        "alpha.echo": Tool.objects.create(server=alpha, name="echo", input_schema={"type": "object"}),
        "alpha.sum": Tool.objects.create(server=alpha, name="sum"),
        "beta.fetch": Tool.objects.create(server=beta, name="fetch"),
    }


@pytest.fixture
def staff(admin_user: User) -> Client:
    return staff_client(admin_user)


def names(response: object) -> list[str]:
    assert response.status_code == 200, response.content
    return [f"{row['server']}.{row['name']}" for row in response.json()]


@pytest.mark.django_db
def test_auth_matrix(client: Client, django_user_model: type[User], staff: Client, tools: dict) -> None:
    assert client.get(URL).status_code == 401
    assert Client(HTTP_AUTHORIZATION="Bearer wrong").get(URL).status_code == 401
    assert plain_user_client(django_user_model).get(URL).status_code == 403
    assert names(staff.get(URL)) == ["alpha.echo", "alpha.sum", "beta.fetch"]
    assert names(token_client().get(URL)) == ["alpha.echo", "alpha.sum", "beta.fetch"]
    assert names(token_client("beta", name="limited").get(URL)) == ["beta.fetch"]


@pytest.mark.django_db
def test_retrieve(staff: Client, tools: dict) -> None:
    tool = tools["alpha.echo"]
    body = staff.get(f"{URL}{tool.pk}/").json()
    assert body["server"] == "alpha" and body["input_schema"] == {"type": "object"} and body["enabled"] is True
    limited = token_client("beta")
    assert limited.get(f"{URL}{tool.pk}/").status_code == 404
    assert limited.get(f"{URL}{tools['beta.fetch'].pk}/").status_code == 200


@pytest.mark.django_db
def test_filter_by_server(staff: Client, tools: dict) -> None:
    assert names(staff.get(URL, {"server": "alpha"})) == ["alpha.echo", "alpha.sum"]
    assert names(token_client("alpha").get(URL, {"server": "alpha"})) == ["alpha.echo", "alpha.sum"]


@pytest.mark.django_db
def test_bad_parameters(staff: Client, tools: dict) -> None:
    unknown = staff.get(URL, {"server": "nope"})
    assert unknown.status_code == 400
    assert unknown.json() == {"server": ["Unknown server 'nope'."]}
    # A server the token may not see answers exactly like a missing one.
    hidden = token_client("beta").get(URL, {"server": "alpha"})
    assert hidden.status_code == 400 and hidden.json() == {"server": ["Unknown server 'alpha'."]}
    extra = staff.get(URL, {"serve": "alpha"})
    assert extra.status_code == 400 and "serve" in extra.json()["detail"]
    one = staff.get(f"{URL}{tools['alpha.echo'].pk}/", {"server": "alpha"})
    assert one.status_code == 400 and "server" in one.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("slug", "reason"),
    [
        ("\x00", "Null characters are not allowed."),
        ("alpha\x00", "Null characters are not allowed."),
        ("", "This field may not be blank."),  # not "every server"
    ],
)
def test_a_bad_server_parameter_is_a_400_naming_it(staff: Client, tools: dict, slug: str, reason: str) -> None:
    response = staff.get(URL, {"server": slug})

    assert response.status_code == 400
    assert reason in response.json()["server"]


def patch(client: Client, tool: Tool, body: object) -> object:
    return client.patch(f"{URL}{tool.pk}/", json.dumps(body), content_type="application/json")


@pytest.mark.django_db
def test_staff_toggles_enabled_through_the_service(
    staff: Client, tools: dict, django_capture_on_commit_callbacks: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    invalidated: list[int] = []
    monkeypatch.setattr("servers.discovery.invalidate_tool_cache", invalidated.append)
    tool = tools["alpha.sum"]

    with django_capture_on_commit_callbacks(execute=True):
        response = patch(staff, tool, {"enabled": False})

    assert response.status_code == 200, response.content
    assert response.json()["enabled"] is False
    tool.refresh_from_db()
    assert tool.enabled is False
    assert invalidated == [tool.server_id]  # set_tools_enabled drops the server's cached tool list


@pytest.mark.django_db
def test_toggle_errors_and_refusals(staff: Client, tools: dict) -> None:
    tool = tools["alpha.sum"]
    missing = patch(staff, tool, {"name": "renamed"})
    assert missing.status_code == 400 and "enabled" in missing.json()
    for value in ("maybe", 0, "false", "off"):  # JSON true or false only, as the schema says
        bad = patch(staff, tool, {"enabled": value})
        assert bad.status_code == 400 and bad.json() == {"enabled": ["Must be a valid boolean."]}, value
    assert patch(token_client(), tool, {"enabled": False}).status_code == 403
    assert staff.put(f"{URL}{tool.pk}/", "{}", content_type="application/json").status_code == 405
    assert staff.post(URL, "{}", content_type="application/json").status_code == 405
    assert staff.delete(f"{URL}{tool.pk}/").status_code == 405
    tool.refresh_from_db()
    assert tool.enabled is True
