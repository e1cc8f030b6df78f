"""Capabilities advertised to a client: what the servers its token sees offer, both eras, both endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from servers import services
from tests.conftest import hub_env, run_web
from tests.gateway.conftest import Hub, register_fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.anyio, pytest.mark.slow]

EVERYTHING = {"tools", "prompts", "resources", "logging", "completions"}


@dataclass
class Tokens:
    hub: Hub
    everything: str  # every server
    bare: str  # `bare` only
    full: str  # `full` only


@pytest.fixture
def tokens(transactional_db: None) -> Iterator[Tokens]:
    """`full` (the fixture: tools, prompts, resources with subscribe, logging, completions), `bare` (tools only)."""
    register_fixture("full")
    register_fixture("bare", "--minimal")
    secrets = [services.create_token(name, slugs)[1] for name, slugs in (("all", ()), ("b", ["bare"]), ("f", ["full"]))]
    with run_web(hub_env()) as live:
        yield Tokens(Hub(live.url, secrets[0], live), *secrets)


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # server/discover (2026-07-28), initialize (handshake era)
@pytest.mark.parametrize(
    ("path", "token", "expected"),
    [
        ("/mcp", "bare", {"tools"}),
        ("/mcp", "full", EVERYTHING),
        ("/mcp", "everything", EVERYTHING),
        ("/mcp/bare/", "everything", {"tools"}),
        ("/mcp/full/", "everything", EVERYTHING),
    ],
)
async def test_a_client_is_told_only_what_its_servers_offer(
    tokens: Tokens, mode: str, path: str, token: str, expected: set[str]
) -> None:
    async with tokens.hub.client(path, token=getattr(tokens, token), mode=mode) as client:
        era = client.protocol_version
        advertised = client.server_capabilities.model_dump(exclude_none=True)
    assert era == ("2026-07-28" if mode == "auto" else "2025-11-25")
    assert set(advertised) == expected
    assert advertised["tools"]["list_changed"] is True  # the hub announces tool list changes itself
    if "resources" in expected:
        # Forwarded in the handshake era, on subscriptions/listen in 2026-07-28 (test_listen.py).
        assert advertised["resources"].get("subscribe") is True
