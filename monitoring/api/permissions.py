"""Who may read monitoring data: staff (session login) or any valid bearer token (read-only endpoints)."""

from __future__ import annotations

from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.views import APIView

from servers.gateway.auth import TokenInfo


def token_of(request: Request) -> TokenInfo | None:
    """The bearer token of the request (servers.api.authentication puts its TokenInfo in request.auth)."""
    return request.auth if isinstance(request.auth, TokenInfo) else None


class StaffOrToken(permissions.BasePermission):
    message = "Staff login or an access token is required."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if token_of(request) is not None:
            return True
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff)
