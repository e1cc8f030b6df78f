"""/api/servers/: auth matrix, CRUD through the services, masked secrets, field-named errors, the schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from servers.models import McpServer
from servers.secrets import MASK
from tests.servers.api_helpers import make_server, plain_user_client, staff_client, token_client
from tests.servers.unusable_values import UNUSABLE, UNUSABLE_IDS

URL = "/api/servers/"


@pytest.fixture
def servers(db: None) -> tuple[McpServer, McpServer]:
    return make_server("alpha", env={"API_KEY": "s3cret"}), make_server("beta")


@pytest.fixture
def staff(admin_user: User) -> Client:
    return staff_client(admin_user)


def post(client: Client, url: str, body: dict[str, object], method: str = "post") -> object:
    return getattr(client, method)(url, json.dumps(body), content_type="application/json")


def slugs(response: object) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["slug"] for row in response.json()]


# --- who may read -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_anonymous_gets_401_with_a_bearer_challenge(client: Client, servers: object) -> None:
    response = client.get(URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_a_wrong_token_gets_401(servers: object) -> None:
    assert Client(HTTP_AUTHORIZATION="Bearer mcphub_nope").get(URL).status_code == 401


@pytest.mark.django_db
def test_a_logged_in_non_staff_user_gets_403(django_user_model: type[User], servers: object) -> None:
    assert plain_user_client(django_user_model).get(URL).status_code == 403


@pytest.mark.django_db
def test_unknown_query_parameters_are_a_400_naming_them(staff: Client, servers: object) -> None:
    for url in (URL, f"{URL}alpha/"):
        response = staff.get(url, {"serch": "x"})
        assert response.status_code == 400
        assert response.json() == {"detail": "unknown query parameter(s): serch"}


@pytest.mark.django_db
def test_staff_and_full_tokens_see_every_server(staff: Client, servers: object) -> None:
    assert slugs(staff.get(URL)) == ["alpha", "beta"]
    assert slugs(token_client().get(URL)) == ["alpha", "beta"]


@pytest.mark.django_db
def test_a_limited_token_sees_only_its_servers(servers: object) -> None:
    client = token_client("beta")
    assert slugs(client.get(URL)) == ["beta"]
    assert client.get(URL + "beta/").status_code == 200
    assert client.get(URL + "alpha/").status_code == 404


@pytest.mark.django_db
def test_secrets_are_masked(staff: Client, servers: object) -> None:
    body = staff.get(URL + "alpha/").json()
    assert body["env"] == {"API_KEY": MASK}
    assert "s3cret" not in json.dumps(body)


# --- who may write ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_tokens_are_read_only(servers: object) -> None:
    client = token_client()
    assert post(client, URL, {"name": "x", "slug": "x", "command": sys.executable}).status_code == 403
    assert post(client, URL + "alpha/", {"name": "renamed"}, method="patch").status_code == 403
    assert client.delete(URL + "alpha/").status_code == 403
    assert McpServer.objects.get(slug="alpha").name == "Alpha"


@pytest.mark.django_db
def test_non_staff_users_cannot_write(django_user_model: type[User], servers: object) -> None:
    client = plain_user_client(django_user_model)
    assert post(client, URL, {"name": "x", "slug": "x", "command": sys.executable}).status_code == 403


@pytest.mark.django_db
def test_staff_creates_a_server_and_discovery_is_scheduled(
    staff: Client, django_capture_on_commit_callbacks: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduled: list[int] = []
    monkeypatch.setattr("servers.services.schedule_discovery", lambda ids: scheduled.extend(ids))
    body = {"name": "Time", "slug": "time", "command": sys.executable, "args": ["-m", "x"], "env": {"TZ": "UTC"}}

    response = post(staff, URL, body)

    assert response.status_code == 201, response.content
    created = McpServer.objects.get(slug="time")
    assert response.json()["env"] == {"TZ": MASK}
    assert response.json()["status"] == "unknown"
    assert created.env == {"TZ": "UTC"} and created.args == ["-m", "x"]
    assert scheduled == [created.pk]  # save_server ran (it schedules discovery)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "slug": "x", "transport": "stdio"}, "command"),
        ({"name": "x", "slug": "x", "command": "/no/such/program"}, "command"),
        ({"name": "x", "slug": "Not A Slug", "command": sys.executable}, "slug"),
        ({"name": "x", "slug": "alpha", "command": sys.executable}, "slug"),
        ({"name": "x", "slug": "x", "transport": "streamable_http", "url": "ftp://example.com/"}, "url"),
        ({"name": "x", "slug": "x", "transport": "streamable_http"}, "url"),
        ({"name": "x", "slug": "x", "command": sys.executable, "args": "--flag"}, "args"),
        ({"name": "x", "slug": "x", "command": sys.executable, "env": {"A": None}}, "env"),
        ({"name": "x", "slug": "x", "command": sys.executable, "env": {"A": MASK}}, "env"),
        ({"name": "x", "slug": "x", "command": sys.executable, "call_timeout": 0}, "call_timeout"),
        ({"name": "x", "slug": "x", "command": sys.executable, "transport": "smoke"}, "transport"),
        ({"slug": "x", "command": sys.executable}, "name"),
        ({"name": "x", "slug": "x", "command": sys.executable, "enabled": 1}, "enabled"),
    ],
)
def test_validation_errors_name_the_field(staff: Client, servers: object, body: dict, field: str) -> None:
    response = post(staff, URL, body)

    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not McpServer.objects.filter(slug="x").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "value"), UNUSABLE, ids=UNUSABLE_IDS)
def test_values_the_hub_cannot_use_are_400_on_their_field(
    staff: Client, servers: object, field: str, value: object
) -> None:
    before = McpServer.objects.get(slug="alpha")

    created = post(staff, URL, {"name": "x", "slug": "x", "command": sys.executable, field: value})
    patched = post(staff, URL + "alpha/", {field: value}, method="patch")

    assert (created.status_code, list(created.json())) == (400, [field])
    assert (patched.status_code, list(patched.json())) == (400, [field])
    assert not McpServer.objects.filter(slug="x").exists()
    assert getattr(McpServer.objects.get(slug="alpha"), field) == getattr(before, field)


@pytest.mark.django_db
def test_update_keeps_masked_secrets_and_bumps_the_config_version(staff: Client, servers: object) -> None:
    before = McpServer.objects.get(slug="alpha")

    response = post(staff, URL + "alpha/", {"env": {"API_KEY": MASK, "NEW": "v"}}, method="patch")

    assert response.status_code == 200, response.content
    assert response.json()["env"] == {"API_KEY": MASK, "NEW": MASK}
    after = McpServer.objects.get(slug="alpha")
    assert after.env == {"API_KEY": "s3cret", "NEW": "v"}
    assert after.config_version == before.config_version + 1  # a connection field changed


@pytest.mark.django_db
def test_a_name_change_does_not_restart_sessions(staff: Client, servers: object) -> None:
    response = post(staff, URL + "alpha/", {"name": "Renamed", "status": "up"}, method="patch")

    assert response.status_code == 200
    after = McpServer.objects.get(slug="alpha")
    assert after.name == "Renamed"
    assert after.config_version == 1
    assert after.status == "unknown"  # read-only: written by the health checks only


@pytest.mark.django_db
def test_put_replaces_and_validates(staff: Client, servers: object) -> None:
    body = {"name": "Alpha", "slug": "alpha", "transport": "streamable_http", "url": "http://127.0.0.1:9/mcp"}
    response = post(staff, URL + "alpha/", body, method="put")

    assert response.status_code == 200, response.content
    assert McpServer.objects.get(slug="alpha").transport == "streamable_http"
    bad = post(staff, URL + "alpha/", {**body, "url": ""}, method="put")
    assert bad.status_code == 400 and "url" in bad.json()


@pytest.mark.django_db
def test_staff_deletes_a_server(staff: Client, servers: object) -> None:
    assert staff.delete(URL + "beta/").status_code == 204
    assert not McpServer.objects.filter(slug="beta").exists()
    assert staff.delete(URL + "beta/").status_code == 404


@pytest.mark.django_db
def test_schema_generates_without_warnings(tmp_path: Path) -> None:
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    for path in ("/api/servers/", "/api/servers/{slug}/", "/api/tools/", "/api/tools/{id}/", "/api/metrics/"):
        assert f"  {path}:" in text
    assert "bearerToken" in text
