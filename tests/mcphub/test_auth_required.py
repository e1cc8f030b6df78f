"""Everything but /healthz needs a login (or, later, a token)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client


@pytest.mark.django_db
def test_admin_redirects_anonymous_to_login(client: Client) -> None:
    response = client.get("/admin/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_api_schema_needs_login(client: Client, path: str) -> None:
    assert client.get(path).status_code in (401, 403)


@pytest.mark.django_db
def test_api_schema_for_logged_in_staff(client: Client, admin_user: User) -> None:
    client.force_login(admin_user)

    response = client.get("/api/schema/")

    assert response.status_code == 200
    assert b"openapi: 3" in response.content
