"""The same tools/call cases down both ways through /mcp, in both eras: the hot path (MCPHUB_FAST_PATH on:
servers/gateway/stateless.py for 2026-07-28 clients, servers/gateway/handshake.py for a handshake-era
session, servers/upstream/relay.py towards the upstream) and the SDK's session manager (off).

Each path gets a web process of its own (the Procfile's command) and fresh upstreams (our fixture server
over Streamable HTTP, so that the hot path relays) on the same ports; both must give the same HTTP status,
the same JSON-RPC answer (and content type) and the same call record.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from django.utils import timezone

from logs.models import RequestLog
from servers import services
from servers.discovery import discover
from servers.models import McpServer, Status
from servers.upstream.relay import USER_AGENT
from tests.conftest import free_port, http_fixture_server, hub_env, run_web, wait_for
from tests.gateway.conftest import Hub, answer, tool_call

pytestmark = [pytest.mark.slow, pytest.mark.parity, pytest.mark.django_db(transaction=True)]

PATHS = {"fast": "1", "sdk": "0"}  # MCPHUB_FAST_PATH
MODERN, HANDSHAKE = "2026-07-28", "2025-11-25"
MAX_REQUEST_BYTES = 100_000
HUB_ENV = {
    "MCPHUB_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES),
    "MCPHUB_MAX_QUEUED_CALLS": "0",  # a call finding every slot taken is refused at once
    "MONITORING_BREAKER_COOLDOWN": "3600",  # a server that is down stays open for the whole test
}
RECORD_FIELDS = (
    "outcome",
    "error",
    "error_code",
    "server_slug",
    "tool",
    "response_bytes",
    "request_bytes",
    "protocol_era",
    "token_name",
)
# What each run also calls, its records left out: `narrow__slow` holds narrow's one slot, `narrow__add` probes
# until it is held; `narrow__pid` marks the end of a run (its record written means every record before it is).
PROBE, HOLD, MARK = ("narrow", "add"), ("narrow", "slow"), ("narrow", "pid")
# The one part of an answer that legitimately differs between two runs: the breaker's countdown.
COUNTDOWN = re.compile(r"next trial call in \d+ s")


@dataclass(frozen=True)
class Case:
    tool: str
    arguments: dict[str, Any]
    token: str = "all"  # or "narrow": a token allowed on `narrow` only
    headers: dict[str, str] = field(default_factory=dict)
    busy: bool = False  # another call holds narrow's only slot meanwhile


CASES = {
    "ok": Case("web__add", {"a": 2, "b": 3}),
    "ok-mcp-param": Case("web__route", {"region": "eu-west"}, headers={"Mcp-Param-Region": "eu-west"}),
    "ok-non-ascii": Case("web__echo", {"text": "grüße ✓"}),
    "ok-handshake-upstream": Case("old__echo", {"text": "hello"}),  # a result without a serverInfo stamp
    "tool-error": Case("web__fail", {}),
    "unknown-tool": Case("web__nope", {}),
    "denied": Case("web__add", {"a": 1, "b": 1}, token="narrow"),
    "timeout": Case("webquick__slow", {"seconds": 20}),
    "crash-mid-call": Case("web__crash", {}),
    "breaker-open": Case("gone__echo", {"text": "anyone?"}),
    "over-the-concurrency-limit": Case("narrow__echo", {"text": "me too"}, busy=True),
    "413": Case("web__echo", {"text": "x" * MAX_REQUEST_BYTES}),
    "mcp-param-mismatch": Case("web__route", {"region": "eu-west"}, headers={"Mcp-Param-Region": "us-east"}),
}


@dataclass(frozen=True)
class Seen:
    """What a client and the request log saw of one case."""

    status: int
    content_type: str
    body: Any  # the JSON-RPC answer
    records: list[dict[str, Any]]


@dataclass(frozen=True)
class Upstreams:
    """Our fixture server three times over Streamable HTTP: `web`, `webquick` and `gone` on the first;
    `narrow` on the second; `old` on the third, which speaks the handshake era only."""

    ports: tuple[int, int, int]
    tokens: dict[str, str]

    @contextmanager
    def running(self) -> Iterator[list[str]]:
        flags = ((), (), ("--legacy-only",))
        with ExitStack() as stack:
            yield [stack.enter_context(http_fixture_server(*f, port=p)) for f, p in zip(flags, self.ports, strict=True)]


@pytest.fixture
def upstreams() -> Upstreams:
    """The servers registered and discovered, `gone` marked down; the tokens."""
    ports = (free_port(), free_port(), free_port())
    with Upstreams(ports, {}).running() as (first, second, third):
        for slug, url, fields in (
            ("web", first, {}),
            ("webquick", first, {"call_timeout": 2}),
            ("gone", first, {}),
            ("narrow", second, {"max_concurrent_calls": 1}),
            ("old", third, {}),
        ):
            server = McpServer.objects.create(name=slug, slug=slug, transport="streamable_http", url=url, **fields)
            discover(server)
    McpServer.objects.filter(slug="gone").update(status=Status.DOWN, status_changed_at=timezone.now())
    tokens = {"all": services.create_token("parity")[1], "narrow": services.create_token("narrow", ["narrow"])[1]}
    return Upstreams(ports, tokens)


def run_case(case: Case, upstreams: Upstreams, fast_path: str, era: str = MODERN) -> Seen:
    """The case against fresh upstreams and a web process of its own, called by a client of `era` (a
    handshake-era one calls in a session it opened with the case's token)."""
    RequestLog.objects.all().delete()
    env = hub_env(MCPHUB_FAST_PATH=fast_path, **HUB_ENV)
    with upstreams.running(), run_web(env) as web, ThreadPoolExecutor(1) as pool:
        hub = Hub(web.url, upstreams.tokens["all"], web)
        holder = None
        if case.busy:
            holder = _hold_narrows_slot(hub, pool)
        token = upstreams.tokens[case.token]
        if era == MODERN:
            response = hub.call(case.tool, case.arguments, token=token, **case.headers)
        else:
            response = hub.in_session(hub.open_session(token), tool_call(case.tool, case.arguments), token=token)
        if holder is not None:
            assert holder.result().status_code == 200
        assert hub.call("narrow__pid", {}).status_code == 200
        wait_for(lambda: RequestLog.objects.filter(server_slug="narrow", tool="pid").exists(), what="the records")
    records = RequestLog.objects.order_by("id").values(*RECORD_FIELDS)
    ours = [_without_countdown(r) for r in records if (r["server_slug"], r["tool"]) not in (PROBE, HOLD, MARK)]
    return Seen(response.status_code, response.headers["content-type"], _answer(response), ours)


def _hold_narrows_slot(hub: Hub, pool: ThreadPoolExecutor) -> Future[httpx2.Response]:
    """A call running in narrow's one slot (a probe is refused), for 8 s from now at least.

    Sent again if it found the slot taken (by a probe) and was refused itself.
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        holder = pool.submit(hub.call, "narrow__slow", {"seconds": 10})
        while not holder.done():
            if answer(hub.call("narrow__add", {"a": 1, "b": 1}))["result"]["isError"]:
                return holder
            time.sleep(0.1)
    raise AssertionError("no call could take narrow's one slot within 60 s")


def _answer(response: httpx2.Response) -> Any:
    """The JSON-RPC answer (the breaker's countdown blanked)."""
    return _without_countdown(answer(response))


def _without_countdown(value: Any) -> Any:
    """`value` (JSON) with the breaker's countdown blanked: it differs between any two runs."""
    return json.loads(COUNTDOWN.sub("next trial call in N s", json.dumps(value)))


# Every case in both eras, but Mcp-Param-* headers: a 2026-07-28 feature.
ERA_CASES = [
    (name, era) for era in (MODERN, HANDSHAKE) for name, case in CASES.items() if era == MODERN or not case.headers
]


@pytest.mark.parametrize(("name", "era"), ERA_CASES)
def test_both_paths_answer_and_record_alike(upstreams: Upstreams, name: str, era: str) -> None:
    case = CASES[name]
    fast, sdk = (run_case(case, upstreams, flag, era) for flag in PATHS.values())
    print(f"{name} ({era}):\n  fast: {fast}\n  sdk:  {sdk}")

    assert fast == sdk


@pytest.mark.parametrize("path", PATHS)
def test_the_switch_picks_the_path(upstreams: Upstreams, path: str) -> None:
    with upstreams.running(), run_web(hub_env(MCPHUB_FAST_PATH=PATHS[path], **HUB_ENV)) as web:
        response = Hub(web.url, upstreams.tokens["all"], web).call("web__whoami", {})
    seen = answer(response)["result"]["structuredContent"]

    # The relay names itself to the upstream; the SDK's client does not.
    assert (seen["headers"]["user-agent"] == USER_AGENT) == (path == "fast")
    assert seen["protocol_version"] == "2026-07-28"
