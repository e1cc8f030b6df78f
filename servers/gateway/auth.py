"""Bearer-token authentication for /mcp (and the REST API), with a short in-process cache.

A revoked or expired token stops working within TOKEN_CACHE_SECONDS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from servers.models import AccessToken

TOKEN_CACHE_SECONDS = 10.0
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    server_ids: frozenset[int] | None  # None: every server

    def allows(self, server_id: int) -> bool:
        return self.server_ids is None or server_id in self.server_ids


_cache: dict[str, tuple[float, TokenInfo | None]] = {}


def bearer_secret(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, secret = authorization.partition(" ")
    return secret.strip() or None if scheme.lower() == "bearer" else None


def authenticate(secret: str) -> TokenInfo | None:
    """The active (not revoked, unexpired) token with this secret, or None (touches the database)."""
    token = AccessToken.objects.active().filter(token_hash=AccessToken.hash_secret(secret)).first()
    if token is None:
        return None
    now = timezone.now()
    # Written at most once a minute per token: last_used is for humans, not for accounting.
    AccessToken.objects.filter(pk=token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)
    server_ids = frozenset(token.servers.values_list("pk", flat=True))
    return TokenInfo(token.pk, token.name, server_ids or None)


def _authenticate_in_thread(secret: str) -> TokenInfo | None:
    try:
        return authenticate(secret)
    finally:
        connection.close()


async def authenticate_cached(secret: str) -> TokenInfo | None:
    key = AccessToken.hash_secret(secret)
    hit = _cache.get(key)
    now = time.monotonic()
    if hit is not None and hit[0] > now:
        return hit[1]
    info = await sync_to_async(_authenticate_in_thread, thread_sensitive=False)(secret)
    if len(_cache) > 10_000:
        _cache.clear()  # bounded: a flood of random tokens must not grow memory
    _cache[key] = (now + TOKEN_CACHE_SECONDS, info)
    return info


def clear_cache() -> None:
    _cache.clear()
