"""servers.tokens: the bearer header, the short cache, and the last answers kept while PostgreSQL is down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import DatabaseError
from django.utils import timezone

from servers import services, tokens
from servers.models import AccessToken
from servers.tokens import AuthUnavailable, TokenInfo, authenticate_cached, bearer_secret
from tests.servers.api_helpers import make_server

pytestmark = pytest.mark.usefixtures("transactional_db")  # the lookup runs on a thread of its own


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    tokens.clear_cache()
    yield
    tokens.clear_cache()


def check(secret: str) -> TokenInfo | None:
    return asyncio.run(authenticate_cached(secret))


def database_down(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on every token lookup fails as in an outage; returns the secrets the database was asked for."""
    asked: list[str] = []

    def fail(secret: str) -> None:
        asked.append(secret)
        raise DatabaseError("connection refused")

    monkeypatch.setattr(tokens, "authenticate", fail)
    return asked


@pytest.mark.parametrize(
    ("header", "secret"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer  ", None),
        ("", None),
    ],
)
def test_bearer_secret_takes_only_a_bearer_scheme_with_a_secret(header: str, secret: str | None) -> None:
    assert bearer_secret(header) == secret
    assert bearer_secret(None) is None


def test_a_token_limited_to_servers_allows_only_those() -> None:
    alpha, beta = make_server("alpha"), make_server("beta")
    _token, secret = services.create_token("ci", ["alpha"])

    info = check(secret)

    assert info is not None and info.name == "ci"
    assert info.allows(alpha.pk) and not info.allows(beta.pk)
    assert check("mcphub_unknown") is None


def test_a_revoked_token_is_refused_once_its_cached_answer_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    _token, secret = services.create_token("laptop")
    assert check(secret) is not None

    services.revoke_token("laptop")

    assert check(secret) is not None  # the cached answer, for up to TOKEN_CACHE_SECONDS
    monkeypatch.setattr(tokens, "TOKEN_CACHE_SECONDS", 0.0)
    tokens.clear_cache()
    assert check(secret) is None


def test_while_the_database_is_down_a_known_token_keeps_its_last_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "TOKEN_CACHE_SECONDS", 0.0)  # every check would ask the database
    _token, secret = services.create_token("laptop")
    known = check(secret)
    asked = database_down(monkeypatch)

    assert check(secret) == known
    assert check(secret) == known
    with pytest.raises(AuthUnavailable):
        check("mcphub_never_seen")
    assert asked == [secret]  # after one failure the database is left alone for DATABASE_RETRY_SECONDS


def test_while_the_database_is_down_an_expiry_date_still_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    token, secret = services.create_token("soon", expires_at=timezone.now() + timedelta(hours=1))
    AccessToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() + timedelta(seconds=1))
    assert check(secret) is not None
    database_down(monkeypatch)

    time.sleep(1.2)

    assert check(secret) is None
