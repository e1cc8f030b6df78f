"""`manage.py create_token`: the secret is the last line, stored only as a hash."""

from __future__ import annotations

import io
import sys

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from servers.models import AccessToken, McpServer


def _create(*args: str) -> str:
    out = io.StringIO()
    call_command("create_token", *args, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


@pytest.mark.django_db
def test_token_is_printed_last_and_stored_hashed() -> None:
    secret = _create("laptop")

    token = AccessToken.objects.get(name="laptop")
    assert secret.startswith("mcphub_")
    assert token.token_hash == AccessToken.hash_secret(secret)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM servers_accesstoken")
        assert secret not in repr(cursor.fetchall())
    assert token.servers.count() == 0  # all servers


@pytest.mark.django_db
def test_token_limited_to_servers() -> None:
    McpServer.objects.create(name="a", slug="a", command=sys.executable)
    McpServer.objects.create(name="b", slug="b", command=sys.executable)

    _create("ci", "--server", "a")

    assert list(AccessToken.objects.get(name="ci").servers.values_list("slug", flat=True)) == ["a"]


@pytest.mark.django_db
def test_unknown_server_is_an_error_and_creates_nothing() -> None:
    with pytest.raises(CommandError, match="unknown server slug"):
        _create("ci", "--server", "nope")

    assert not AccessToken.objects.exists()
