"""Bearer-token authentication for /mcp (and the REST API), with a short in-process cache.

A revoked or expired token stops working within TOKEN_CACHE_SECONDS. While PostgreSQL
cannot be asked, a token this process knows keeps its last answer (an expiry date still
applies); a token it has never seen raises AuthUnavailable (503 at /mcp), never a 500.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from django.db import DatabaseError
from django.db.models import Q
from django.utils import timezone

from servers import outages
from servers.blocking import run_blocking
from servers.models import AccessToken

TOKEN_CACHE_SECONDS = 10.0
# After a failed query the database is not asked again for this long (a call must not wait on it each time).
DATABASE_RETRY_SECONDS = 5.0
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    server_ids: frozenset[int] | None  # None: every server
    expires_at: float | None = None  # time.time() of the token's expiry, if it has one

    def allows(self, server_id: int) -> bool:
        return self.server_ids is None or server_id in self.server_ids


class AuthUnavailable(Exception):
    """The database cannot be asked and this process has no answer for the token: try again later."""

    retry_after = DATABASE_RETRY_SECONDS


# Hash of the secret -> (monotonic time until which the answer holds, the answer).
_cache: dict[str, tuple[float, TokenInfo | None]] = {}
_database_retry_at = 0.0  # monotonic: before this, a cache miss does not ask the database


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
    expires_at = token.expires_at.timestamp() if token.expires_at is not None else None
    return TokenInfo(token.pk, token.name, server_ids or None, expires_at)


async def authenticate_cached(secret: str) -> TokenInfo | None:
    """The token's answer from the cache, else from the database; AuthUnavailable when neither can tell."""
    global _database_retry_at
    key = AccessToken.hash_secret(secret)
    hit = _cache.get(key)
    now = time.monotonic()
    if hit is not None and hit[0] > now:
        return hit[1]
    if now < _database_retry_at:
        return _last_known(hit)
    try:
        info = await run_blocking(authenticate, secret)
    except DatabaseError as exc:
        _database_retry_at = time.monotonic() + DATABASE_RETRY_SECONDS
        outages.database.failed("token check", exc)
        return _last_known(hit)
    outages.database.succeeded()
    if len(_cache) > 10_000:
        _forget_unknown()  # bounded: a flood of random tokens must not grow memory
    expiry = now + TOKEN_CACHE_SECONDS
    if info is not None and info.expires_at is not None:
        expiry = min(expiry, now + info.expires_at - time.time())  # an expiry date is kept to the second
    _cache[key] = (expiry, info)
    return info


def _last_known(hit: tuple[float, TokenInfo | None] | None) -> TokenInfo | None:
    """The last answer for a token while the database cannot be asked (its expiry date still holds)."""
    if hit is None:
        raise AuthUnavailable("the token database is unreachable and this token has not been seen yet")
    info = hit[1]
    if info is not None and info.expires_at is not None and info.expires_at <= time.time():
        return None
    return info


def _forget_unknown() -> None:
    """Drop the cached refusals; real tokens stay known (there are only so many, and an outage needs them)."""
    for key in [key for key, (_expiry, info) in _cache.items() if info is None]:
        del _cache[key]


def clear_cache() -> None:
    global _database_retry_at
    _cache.clear()
    _database_retry_at = 0.0
