"""Tokens in the admin: the list, creation with the secret shown once, limits, expiry, the revoke action."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from servers import services
from servers.models import AccessToken, McpServer
from servers.tokens import authenticate
from tests.servers.api_helpers import make_server, staff_client

CHANGELIST = reverse("admin:servers_accesstoken_changelist")
ADD = reverse("admin:servers_accesstoken_add")


def change_url(token: AccessToken) -> str:
    return reverse("admin:servers_accesstoken_change", args=[token.pk])


@pytest.fixture
def staff(admin_user: Any) -> Client:
    return staff_client(admin_user)


@pytest.fixture
def alpha(db: None) -> McpServer:
    return make_server("alpha")


@pytest.mark.django_db
def test_list_shows_name_hint_servers_expiry_last_use_and_state(staff: Client, alpha: McpServer) -> None:
    _, limited = services.create_token("ci", ["alpha"], expires_at=timezone.now() + timedelta(days=3))
    _, everything = services.create_token("laptop")
    services.revoke_token("laptop")
    old, _ = services.create_token("old")
    AccessToken.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(days=1))
    authenticate(limited)

    response = staff.get(CHANGELIST)

    assert response.status_code == 200
    rows = {token.name: token for token in response.context["cl"].result_list}
    assert set(rows) == {"ci", "laptop", "old"}
    page = response.content.decode()
    for text in ("ci", limited[:12] + "…", "alpha", "all servers", "active", "revoked", "expired"):
        assert text in page
    assert rows["ci"].last_used_at is not None
    assert limited not in page and everything not in page
    assert "delete_selected" not in page  # revoke, never delete: the rows are history


@pytest.mark.django_db
@pytest.mark.parametrize(("state", "names"), [("active", ["ci"]), ("revoked", ["laptop"])])
def test_list_filters_by_state(staff: Client, state: str, names: list[str]) -> None:
    services.create_token("ci")
    services.create_token("laptop")
    services.revoke_token("laptop")

    response = staff.get(CHANGELIST, {"state": state})

    assert [token.name for token in response.context["cl"].result_list] == names


@pytest.mark.django_db
def test_add_shows_the_secret_once_and_stores_only_its_hash(staff: Client, alpha: McpServer) -> None:
    make_server("beta")
    form = staff.get(ADD)
    assert form.status_code == 200 and list(form.context["adminform"].form.fields) == ["name", "servers", "expires_at"]
    data = {"name": "laptop", "servers": [alpha.pk], "expires_at_0": "2031-01-02", "expires_at_1": "03:04:05"}

    response = staff.post(ADD, data)

    assert response.status_code == 200, response.context["adminform"].form.errors
    secret = response.context["secret"]
    assert secret.startswith(AccessToken.PREFIX) and secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    token = AccessToken.objects.get(name="laptop")
    assert token.token_hash == AccessToken.hash_secret(secret)
    assert list(token.servers.values_list("slug", flat=True)) == ["alpha"]
    assert timezone.localtime(token.expires_at).strftime("%Y-%m-%d %H:%M:%S") == "2031-01-02 03:04:05"
    info = authenticate(secret)
    assert info is not None and info.server_ids == frozenset({alpha.pk})
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM servers_accesstoken")
        assert secret not in repr(cursor.fetchall())
    # Nowhere else: not in the history, the session, a cookie (messages) nor any later page.
    history = list(LogEntry.objects.values_list("object_repr", "change_message"))
    assert history and secret not in repr(history)
    assert secret not in repr(dict(staff.session.items())) and secret not in str(staff.cookies)
    for later in (CHANGELIST, change_url(token)):
        page = staff.get(later)
        assert page.status_code == 200, later
        assert secret not in page.content.decode(), later


@pytest.mark.django_db
def test_add_without_a_name_is_an_error_on_the_name(staff: Client) -> None:
    response = staff.post(ADD, {"name": ""})

    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["name"]
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_change_limits_the_servers_and_sets_the_expiry(staff: Client, alpha: McpServer) -> None:
    token, secret = services.create_token("laptop")
    data = {"name": "laptop", "servers": [alpha.pk], "expires_at_0": "2031-01-02", "expires_at_1": "03:04:05"}

    response = staff.post(change_url(token), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    token.refresh_from_db()
    assert list(token.servers.values_list("slug", flat=True)) == ["alpha"]
    assert token.expires_at is not None
    assert token.token_hash == AccessToken.hash_secret(secret)  # editing never changes the secret


@pytest.mark.django_db
def test_revoke_action_keeps_the_row_and_the_token_stops_working(staff: Client) -> None:
    token, secret = services.create_token("laptop")
    _other, other_secret = services.create_token("ci")

    response = staff.post(CHANGELIST, {"action": "revoke", "_selected_action": [token.pk]}, follow=True)

    assert "1 token(s) revoked." in [str(message) for message in response.context["messages"]]
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert authenticate(secret) is None
    assert authenticate(other_secret) is not None
    assert Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/servers/").status_code == 401
    # History: viewable, no longer editable, not deletable.
    assert staff.get(change_url(token)).status_code == 200
    assert staff.post(change_url(token), {"name": "renamed"}).status_code == 403
    assert staff.post(reverse("admin:servers_accesstoken_delete", args=[token.pk]), {"post": "yes"}).status_code == 403
    assert AccessToken.objects.filter(pk=token.pk, name="laptop").exists()
