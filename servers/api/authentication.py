"""REST API authentication and permissions: staff sessions do everything, bearer tokens read.

A token limited to some servers sees only those (``visible_server_ids``). The one place that
knows how a request's token is found, for every app's API. Nothing from ``rest_framework.views``
is imported at run time: DRF imports this module while loading its settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework import exceptions, permissions
from rest_framework.authentication import BaseAuthentication

from servers.tokens import TokenInfo, authenticate, bearer_secret

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView


class TokenPrincipal:
    """The ``request.user`` of a token request: authenticated, never staff, no Django user behind it."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, token: TokenInfo) -> None:
        self.token = token
        self.username = f"token:{token.name}"

    def __str__(self) -> str:
        return self.username

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return False


class BearerTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <token>`` with an AccessToken secret; ``request.auth`` is its TokenInfo."""

    def authenticate(self, request: Request) -> tuple[TokenPrincipal, TokenInfo] | None:
        header = request.META.get("HTTP_AUTHORIZATION")
        if not header or not header.lower().startswith("bearer"):
            return None  # not ours: the session (or nothing) decides
        secret = bearer_secret(header)
        info = authenticate(secret) if secret else None
        if info is None:
            raise exceptions.AuthenticationFailed("Invalid or expired token.")
        return TokenPrincipal(info), info

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def token_of(request: Request) -> TokenInfo | None:
    """The request's bearer token (BearerTokenAuthentication puts its TokenInfo in ``request.auth``)."""
    return request.auth if isinstance(request.auth, TokenInfo) else None


def is_staff(request: Request) -> bool:
    user = request.user
    return bool(user and user.is_authenticated and user.is_staff and token_of(request) is None)


def visible_server_ids(request: Request) -> frozenset[int] | None:
    """The servers this request may see: None for all (staff, unrestricted tokens)."""
    token = token_of(request)
    return token.server_ids if token is not None else None


class StaffOrTokenReadOnly(permissions.BasePermission):
    """Staff sessions: every method. Tokens: safe methods only. Anyone else: refused."""

    message = "Staff login or an access token is required; tokens are read-only."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if is_staff(request):
            return True
        return token_of(request) is not None and request.method in permissions.SAFE_METHODS


class StaffOrToken(permissions.BasePermission):
    """Staff sessions and tokens: every method the view has (for views that only read)."""

    message = "Staff login or an access token is required."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return token_of(request) is not None or is_staff(request)
