"""The gateway's circuit breaker: unit behaviour, and fail-fast / trial calls through a live hub."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import anyio
import pytest
from django.utils import timezone

from servers import services
from servers.discovery import bump_registry_version, discover
from servers.gateway.breaker import CircuitBreaker
from servers.models import McpServer
from tests.conftest import free_port, http_fixture_server, hub_env, run_web, wait_for
from tests.gateway.conftest import Hub, register_fixture
from tests.monitoring.status_helpers import queued_tasks, set_status

COOLDOWN = 3.0


@pytest.fixture
def cooldown(settings) -> float:
    settings.MONITORING_BREAKER_COOLDOWN = 0.3
    return 0.3


def test_not_down_always_passes(cooldown: float) -> None:
    breaker = CircuitBreaker()

    admission = breaker.admit(1, False, timezone.now())

    assert admission.allowed and not admission.trial


def test_down_fails_fast_until_the_cooldown_then_one_trial(cooldown: float) -> None:
    breaker = CircuitBreaker()
    went_down = timezone.now()

    refused = breaker.admit(1, True, went_down)
    assert not refused.allowed and 0 < refused.retry_in <= cooldown

    time.sleep(cooldown + 0.05)
    trial = breaker.admit(1, True, went_down)
    assert trial.allowed and trial.trial
    assert not breaker.admit(1, True, went_down).allowed  # one trial at a time

    breaker.settle(1, True)
    assert breaker.admit(1, True, went_down) == breaker.admit(2, False, None)  # closed: passes
    assert not breaker.admit(1, True, went_down).trial


def test_a_failed_trial_reopens_for_another_cooldown(cooldown: float) -> None:
    breaker = CircuitBreaker()
    went_down = timezone.now() - timedelta(seconds=60)
    assert breaker.admit(1, True, went_down).trial

    breaker.settle(1, False)

    refused = breaker.admit(1, True, went_down)
    assert not refused.allowed and refused.retry_in > 0
    time.sleep(cooldown + 0.05)
    assert breaker.admit(1, True, went_down).trial


def test_a_cancelled_trial_frees_the_slot(cooldown: float) -> None:
    breaker = CircuitBreaker()
    went_down = timezone.now() - timedelta(seconds=60)
    assert breaker.admit(1, True, went_down).trial

    breaker.settle(1, None)

    assert breaker.admit(1, True, went_down).trial


def test_a_local_close_lapses_while_the_status_stays_down(cooldown: float) -> None:
    breaker = CircuitBreaker()
    went_down = timezone.now() - timedelta(seconds=60)
    breaker.admit(1, True, went_down)
    breaker.settle(1, True)

    time.sleep(cooldown + 0.05)

    assert breaker.admit(1, True, went_down).trial  # half-open again: the next trial decides


def test_a_new_down_period_starts_afresh(cooldown: float) -> None:
    breaker = CircuitBreaker()
    breaker.admit(1, True, timezone.now() - timedelta(seconds=60))
    breaker.settle(1, True)

    assert not breaker.admit(1, True, timezone.now()).allowed  # went down again just now


# --- through a live hub --------------------------------------------------------------------------------


@pytest.fixture
def hub(transactional_db: None) -> Iterator[Hub]:
    """The stdio fixture server `fixture`, a token, the web with a 3 s breaker cool-down."""
    register_fixture("fixture")
    _token, secret = services.create_token("tests")
    with run_web(hub_env(MONITORING_BREAKER_COOLDOWN=str(COOLDOWN))) as server:
        yield Hub(server.url, secret, server)


def mark_down(slug: str, seconds_ago: float = 0) -> None:
    set_status(McpServer.objects.get(slug=slug), "down", timezone.now() - timedelta(seconds=seconds_ago))
    bump_registry_version()


async def call(hub: Hub, tool: str, **arguments: object) -> tuple[bool, str, float]:
    started = time.perf_counter()
    async with hub.client() as client:
        result = await client.call_tool(tool, arguments)
    text = " ".join(getattr(block, "text", "") for block in result.content)
    return result.is_error, text, time.perf_counter() - started


def test_down_server_fails_fast_then_one_trial_closes_it(hub: Hub) -> None:
    mark_down("fixture")

    async def scenario() -> None:
        async def refused() -> bool:
            failed, text, _ = await call(hub, "fixture__echo", text="hi")
            return failed and "server is down" in text

        await wait_until(refused, "the gateway to see the server down")
        failed, text, elapsed = await call(hub, "fixture__slow", seconds=5)
        assert failed and "fixture: server is down (failing health checks); calls fail fast" in text
        assert elapsed < 5  # not forwarded

        await anyio.sleep(COOLDOWN)
        # The trial (a 3 s call) goes through; a call meanwhile still fails fast.
        results = {}
        async with hub.client() as first, hub.client() as second:

            async def trial() -> None:
                results["trial"] = await first.call_tool("fixture__slow", {"seconds": 3})

            async with anyio.create_task_group() as group:
                group.start_soon(trial)
                await anyio.sleep(1.0)
                results["meanwhile"] = await second.call_tool("fixture__echo", {"text": "meanwhile"})
        assert results["trial"].is_error is False, results["trial"]
        assert results["meanwhile"].is_error is True
        assert "server is down" in results["meanwhile"].content[0].text
        # Closed in this process: calls pass although the status is still `down` in the database.
        assert (await call(hub, "fixture__echo", text="after"))[:2] == (False, "after")

    anyio.run(scenario)
    server = McpServer.objects.get(slug="fixture")
    assert server.status == "down"
    # ...and the worker was asked to check it now, which will flip the status for every process.
    wait_for(lambda: ("monitoring.tasks.check_server", [server.pk]) in [t[:2] for t in queued_tasks()], timeout=10)


def test_a_failed_trial_reopens_the_breaker(hub: Hub) -> None:
    port = free_port()
    # Down, and cooled down long ago (the next call is a trial), in every snapshot that lists it: the gateway
    # runs from the web's start and would otherwise list it before it sees it down.
    went_down = timezone.now() - timedelta(seconds=60)
    with http_fixture_server(port=port) as url:
        fields = {"transport": "streamable_http", "url": url, "status": "down", "status_changed_at": went_down}
        remote = McpServer.objects.create(name="remote", slug="remote", **fields)
        discover(remote)

    async def scenario() -> None:
        async def listed() -> bool:
            async with hub.client() as client:
                return "remote__echo" in [tool.name for tool in (await client.list_tools()).tools]

        await wait_until(listed, "the gateway to list the remote server's tools")
        failed, text, _ = await call(hub, "remote__echo", text="hi")
        assert failed and "server is down" not in text  # forwarded (and failed: nothing listens)
        failed, text, _ = await call(hub, "remote__echo", text="hi")
        assert failed and "server is down" in text and "next trial call in 3 s" in text

    anyio.run(scenario)
    assert not [t for t in queued_tasks() if t[0] == "monitoring.tasks.check_server"]


async def wait_until(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await anyio.sleep(0.2)
