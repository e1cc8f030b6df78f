"""The OpenAPI schema documents the error answers every operation can give (servers.api.schema)."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.django_db
def test_every_operation_documents_its_error_answers(admin_client: Client) -> None:
    schema = admin_client.get("/api/schema/", {"format": "json"}).json()

    assert "/api/schema/" not in schema["paths"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            expected = {"400", "401", "403", "503"} | ({"404"} if "{" in path else set())
            assert expected <= statuses, (method, path, statuses)
            assert "Retry-After" in operation["responses"]["503"].get("headers", {}) or path == "/api/health/"
    assert schema["paths"]["/api/health/"]["get"]["responses"]["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Health"
    }
