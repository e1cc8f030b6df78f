"""OpenAPI description of the bearer-token authentication (drf-spectacular extension, loaded by the URLconf)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "servers.api.authentication.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An access token (manage.py create_token)."}


ERROR = {
    "type": "object",
    "description": "`detail` (a message), or each refused field or parameter with its messages.",
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": True,
}

ERRORS = {
    "400": "A bad parameter or body: each one named with the reason.",
    "401": "No or an invalid login or token.",
    "403": "Not allowed: not staff, or a token on a write or on the request log.",
    "404": "No such object (or not visible to this token).",
    "503": "The database is unavailable; retry after `Retry-After` seconds.",
}


def document_error_responses(result: dict[str, Any], **_kwargs: object) -> dict[str, Any]:
    """Add the error answers every operation can give (drf-spectacular post-processing hook).

    404 only where the path names an object; a status an operation documents itself (health's 503) is kept.
    """
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERRORS.items():
                if status == "404" and "{" not in path:
                    continue
                response: dict[str, Any] = {"description": description, "content": body}
                if status == "503":
                    response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "required": True}}
                responses.setdefault(status, response)
    return result
