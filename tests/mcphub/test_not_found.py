"""404s: JSON under /api/ (what the schema documents), Django's page elsewhere."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.django_db
def test_an_api_url_nothing_matches_answers_json(admin_client: Client) -> None:
    response = admin_client.get("/api/servers/Not_A_Slug/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


@pytest.mark.django_db
def test_other_urls_keep_the_html_page(admin_client: Client) -> None:
    response = admin_client.get("/no/such/page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
