"""Token lifecycle: `list_tokens`, `revoke_token NAME` (the row stays, the token stops working)."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from servers import services
from servers.models import AccessToken
from servers.tokens import authenticate
from tests.conftest import BASE_DIR, hub_env
from tests.servers.api_helpers import make_server


def run(command: str, *args: str) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def bearer(secret: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


@pytest.mark.django_db
def test_list_tokens_shows_each_token_without_its_secret() -> None:
    make_server("alpha")
    make_server("beta")
    _, laptop = services.create_token("laptop")
    _, ci = services.create_token("ci", ["beta", "alpha"], expires_at=timezone.now() + timedelta(days=3))
    old, _ = services.create_token("old")
    AccessToken.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(days=1))
    services.revoke_token("laptop")
    authenticate(ci)  # records the last use

    lines = run("list_tokens").splitlines()

    assert lines[0].split() == ["name", "hint", "state", "servers", "expires", "last", "used", "created"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"ci", "laptop", "old"}
    assert ci[:12] + "…" in rows["ci"] and " active " in rows["ci"] and "alpha, beta" in rows["ci"]
    assert "never" not in rows["ci"]  # it expires, and it was used
    assert " revoked " in rows["laptop"] and " all " in rows["laptop"]
    assert " expired " in rows["old"]
    assert laptop not in "\n".join(lines) and ci not in "\n".join(lines)
    assert [line.split()[0] for line in run("list_tokens", "--active").splitlines()[1:]] == ["ci"]


@pytest.mark.django_db
def test_list_tokens_without_tokens_says_how_to_create_one() -> None:
    assert "create_token" in run("list_tokens")


@pytest.mark.django_db
def test_revoke_token_keeps_the_row_and_the_token_stops_working() -> None:
    token, secret = services.create_token("laptop")
    assert bearer(secret).get("/api/servers/").status_code == 200

    out = run("revoke_token", "laptop")

    assert "Token 'laptop' revoked." in out
    token.refresh_from_db()
    assert token.revoked_at is not None and token.state == "revoked"
    assert authenticate(secret) is None
    response = bearer(secret).get("/api/servers/")
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid or expired token."


@pytest.mark.django_db
def test_revoke_token_of_an_unknown_name_is_an_error() -> None:
    with pytest.raises(CommandError, match="no token named 'laptop'"):
        run("revoke_token", "laptop")


@pytest.mark.django_db
def test_revoking_twice_is_an_error() -> None:
    services.create_token("laptop")
    services.revoke_token("laptop")

    with pytest.raises(CommandError, match="the token 'laptop' is already revoked"):
        run("revoke_token", "laptop")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_revoke_token_exit_codes() -> None:
    services.create_token("laptop")

    def revoke(name: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "manage.py", "revoke_token", name]
        return subprocess.run(command, cwd=BASE_DIR, env=hub_env(), capture_output=True, text=True, timeout=120)

    unknown, known = revoke("nope"), revoke("laptop")

    assert unknown.returncode == 1
    assert "no token named 'nope'" in unknown.stderr
    assert (known.returncode, known.stdout.strip()) == (0, "Token 'laptop' revoked.")


@pytest.mark.django_db
def test_revoke_token_revokes_every_token_of_that_name() -> None:
    _, first = services.create_token("laptop")
    _, second = services.create_token("laptop")
    _, other = services.create_token("ci")

    assert "2 tokens named 'laptop' revoked." in run("revoke_token", "laptop")

    assert (authenticate(first), authenticate(second)) == (None, None)
    assert authenticate(other) is not None


@pytest.mark.django_db
def test_create_token_with_an_unusable_name_is_an_error() -> None:
    with pytest.raises(CommandError, match=r"^name: Ensure this value has at most 100 characters"):
        run("create_token", "x" * 101)

    assert not AccessToken.objects.exists()
