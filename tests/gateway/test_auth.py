"""Tokens at /mcp: 401 without a valid one; a limited token sees and calls only its servers."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx2
import pytest
from django.utils import timezone
from mcp import MCPError

from servers import services
from servers.models import AccessToken
from tests.conftest import wait_for
from tests.gateway.conftest import INITIALIZE, Hub, tool_call

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic abc", "Bearer"])
def test_missing_or_invalid_token_is_401(hub: Hub, authorization: str | None) -> None:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if authorization is not None:
        headers["Authorization"] = authorization

    response = httpx2.post(hub.url + "/mcp", content=INITIALIZE, headers=headers, timeout=30)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_expired_token_is_401(hub: Hub) -> None:
    token, secret = services.create_token("old")
    AccessToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    assert hub.post(INITIALIZE, token=secret).status_code == 401


def test_revoked_token_is_401(hub: Hub) -> None:
    _token, secret = services.create_token("laptop")
    assert hub.post(INITIALIZE, token=secret).status_code == 200  # now known to (cached by) the web process
    started = time.monotonic()

    services.revoke_token("laptop")

    wait_for(lambda: hub.post(INITIALIZE, token=secret).status_code == 401, timeout=60, what="the token refused")
    print(f"revoked token refused after {time.monotonic() - started:.1f} s")
    assert hub.post(INITIALIZE).status_code == 200  # the other token still works


@pytest.fixture
def quick_only_token(hub: Hub) -> str:
    return services.create_token("quick-only", ["quick"])[1]


@pytest.mark.anyio
async def test_limited_token_sees_and_calls_only_its_servers(hub: Hub, quick_only_token: str) -> None:
    async with hub.client(token=quick_only_token) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        allowed = await client.call_tool("quick__echo", {"text": "ok"})
        with pytest.raises(MCPError) as error:
            await client.call_tool("fixture__echo", {"text": "no"})

    assert tools and all(name.startswith("quick__") for name in tools)
    assert allowed.content[0].text == "ok"
    assert error.value.code == -32602


def test_per_server_endpoint_checks_the_token(hub: Hub, quick_only_token: str) -> None:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}

    forbidden = httpx2.post(
        hub.url + "/mcp/fixture/",
        content=INITIALIZE,
        headers={**headers, "Authorization": f"Bearer {quick_only_token}"},
    )
    unknown = httpx2.post(
        hub.url + "/mcp/nope/", content=INITIALIZE, headers={**headers, "Authorization": f"Bearer {hub.token}"}
    )

    assert forbidden.status_code == 403
    assert unknown.status_code == 404


def test_a_session_answers_only_the_token_that_opened_it(hub: Hub) -> None:
    other = services.create_token("other")[1]
    session_id = hub.open_session()
    in_session = {"Authorization": f"Bearer {other}", "Mcp-Session-Id": session_id}

    post = hub.in_session(session_id, tool_call("fixture__echo", {"text": "intruder"}), token=other)
    stream = httpx2.get(hub.url + "/mcp", headers={**in_session, "Accept": "text/event-stream"}, timeout=30)
    delete = httpx2.delete(hub.url + "/mcp", headers=in_session, timeout=30)
    owner_call = hub.in_session(session_id, tool_call("fixture__echo", {"text": "still mine"}))
    owner_delete = httpx2.delete(
        hub.url + "/mcp", headers={**in_session, "Authorization": f"Bearer {hub.token}"}, timeout=30
    )

    assert [post.status_code, stream.status_code, delete.status_code] == [404, 404, 404]
    assert owner_call.status_code == 200 and "still mine" in owner_call.text
    assert owner_delete.status_code == 200
