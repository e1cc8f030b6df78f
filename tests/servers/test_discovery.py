"""Discovery: tools, resources and prompts upserted from real servers; the cached tool list."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
from django.conf import settings
from django.db import transaction
from django.test import Client
from mcp.shared.exceptions import MCPDeprecationWarning

from monitoring.models import HealthCheck
from servers import services
from servers.discovery import cached_tools, discover, invalidate_tool_cache, probe
from servers.models import McpServer, Tool
from tests.conftest import EVERYTHING, FIXTURE_SERVER, run_celery_beat, run_celery_worker, wait_for
from tests.servers.test_admin import ADD, form_data


def fixture_server(*flags: str, slug: str = "fixture", **fields: object) -> McpServer:
    return McpServer.objects.create(
        name=slug, slug=slug, command=sys.executable, args=[str(FIXTURE_SERVER), *flags], **fields
    )


@pytest.mark.django_db
def test_discovery_stores_tools_resources_prompts_and_era() -> None:
    server = fixture_server()

    found = discover(server)

    assert found is not None
    server.refresh_from_db()
    names = set(server.tools.values_list("name", flat=True))
    assert {"echo", "add", "slow", "crash", "big", "fail"} <= names
    add = server.tools.get(name="add")
    assert add.input_schema["properties"].keys() >= {"a", "b"}
    assert server.resources.filter(uri="fixture://hello").exists()
    assert server.prompts.filter(name="greet").exists()
    assert server.era == "stateless"
    assert server.last_discovered_at is not None
    assert server.discovery_error == ""


@pytest.mark.django_db
@pytest.mark.parametrize("era", [(), ("--legacy-only",)], ids=["stateless", "handshake"])
def test_a_probe_uses_no_request_the_sdk_calls_deprecated(era: tuple[str, ...]) -> None:
    """Health checks run every few seconds: a deprecation warning each time would flood the worker's log."""
    server = fixture_server(*era)

    with warnings.catch_warnings():
        warnings.simplefilter("error", MCPDeprecationWarning)
        result = probe(server)

    assert result.ok, result.error
    assert result.era == ("handshake" if era else "stateless")


@pytest.mark.django_db
def test_discovery_follows_pagination() -> None:
    server = fixture_server("--page-size", "2")

    discover(server)

    assert server.tools.count() >= 7


@pytest.mark.django_db
@pytest.mark.parametrize("era", [(), ("--legacy-only",)], ids=["stateless", "handshake"])
def test_a_change_announced_while_listing_is_listed_once_more_in_the_same_session(era: tuple[str, ...]) -> None:
    # The first listing adds `late_1` and announces it (answering without it), like a server adding tools on connect.
    server = fixture_server("--grow-on-list", "1", *era)

    discover(server)

    assert {"echo", "late_1"} <= set(server.tools.values_list("name", flat=True))


@pytest.mark.django_db
def test_a_server_announcing_a_change_at_every_listing_is_listed_twice_not_forever() -> None:
    server = fixture_server("--grow-on-list", "1000")

    assert discover(server) is not None

    # Listing 1 added late_1, listing 2 (the one more) saw it and added late_2; there was no third.
    names = set(server.tools.values_list("name", flat=True))
    assert "late_1" in names
    assert "late_2" not in names


@pytest.mark.django_db
def test_rediscovery_keeps_admin_choices_and_drops_vanished_tools() -> None:
    server = fixture_server()
    discover(server)
    server.tools.filter(name="echo").update(enabled=False)
    Tool.objects.create(server=server, name="gone", input_schema={})

    discover(server)

    assert server.tools.get(name="echo").enabled is False
    assert not server.tools.filter(name="gone").exists()


@pytest.mark.django_db
def test_failed_discovery_records_the_error() -> None:
    server = fixture_server("--silent", connect_timeout=2)

    assert discover(server) is None

    server.refresh_from_db()
    assert "no connection within 2 s" in server.discovery_error


@pytest.mark.django_db
def test_cached_tool_list_honours_allow_deny_and_enabled() -> None:
    server = fixture_server(tool_allowlist=["e*", "a*", "b*"], tool_denylist=["big"])
    discover(server)
    server.tools.filter(name="add").update(enabled=False)
    invalidate_tool_cache(server.pk)

    assert [tool["name"] for tool in cached_tools(server)] == ["echo"]
    # Served from Redis now: a database change alone does not show until invalidated.
    server.tools.filter(name="add").update(enabled=True)
    assert [tool["name"] for tool in cached_tools(server)] == ["echo"]
    # An allowlist edit changes the key, so the new list is computed at once.
    server.tool_allowlist = ["*"]
    assert "add" in [tool["name"] for tool in cached_tools(server)]


@pytest.mark.django_db
def test_cached_tools_are_mcp_tool_dicts() -> None:
    server = fixture_server()
    discover(server)

    echo = next(tool for tool in cached_tools(server) if tool["name"] == "echo")

    assert echo["inputSchema"]["type"] == "object"
    assert "description" in echo


@pytest.mark.django_db(transaction=True)
def test_save_schedules_discovery_on_commit() -> None:
    queue = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    server = McpServer(name="fx", slug="fx", command=sys.executable, args=[str(FIXTURE_SERVER)])

    with transaction.atomic():
        services.save_server(server)
        assert queue.llen("celery") == 0  # not before the commit

    message = json.loads(queue.lindex("celery", 0))
    assert message["headers"]["task"] == "servers.tasks.discover_server"
    assert message["headers"]["argsrepr"] == f"({server.pk},)"


@pytest.mark.slow
def test_worker_discovers_a_saved_server(celery_worker) -> None:
    server = services.save_server(McpServer(name="fx", slug="fx", command=sys.executable, args=[str(FIXTURE_SERVER)]))

    wait_for(lambda: Tool.objects.filter(server=server, name="echo").exists(), timeout=90, what="worker discovery")
    server.refresh_from_db()
    assert server.era == "stateless"


def discovery_runs(worker_log: Path) -> int:
    """How many discover_server tasks the worker has run (Celery logs each at INFO)."""
    lines = worker_log.read_text(errors="replace").splitlines()
    return sum("servers.tasks.discover_server[" in line and " succeeded " in line for line in lines)


def everything_processes(worker: subprocess.Popen[bytes]) -> set[tuple[int, float]]:
    """The server-everything processes the worker is running now, as (pid, start time)."""
    found = set()
    for child in psutil.Process(worker.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any("mcp-server-everything" in part for part in child.cmdline()):
                found.add((child.pid, child.create_time()))
    return found


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_everything_registered_in_the_admin_is_discovered_a_few_times_not_in_a_loop(
    client: Client, admin_user: Any, tmp_path: Path
) -> None:
    """server-everything adds tools once a client connects and announces it: that must not feed back into discovery.

    A real worker and beat (health checks every 5 s) for a minute after an admin registers it.
    """
    worker_log = tmp_path / "worker.log"
    client.force_login(admin_user)
    data = form_data(client.get(ADD))
    data.update(
        name="Everything", slug="everything", command=str(EVERYTHING), args='["stdio"]', health_check_interval="5"
    )
    spawned: set[tuple[int, float]] = set()
    with run_celery_worker(log=worker_log, loglevel="INFO") as worker, run_celery_beat(MONITORING_SCHEDULE_SECONDS="1"):
        response = client.post(ADD, data)
        assert response.status_code == 302, response.context["adminform"].form.errors
        server = McpServer.objects.get(slug="everything")
        watch_until = time.monotonic() + 60
        while time.monotonic() < watch_until:
            spawned |= everything_processes(worker)
            time.sleep(0.05)

    discoveries = discovery_runs(worker_log)
    checks = HealthCheck.objects.filter(server=server).count()
    print(
        f"\nserver-everything, 60 s: {discoveries} discoveries, {checks} health checks, {len(spawned)} node processes"
    )
    assert 1 <= discoveries <= 3  # the save, the first "up" (reachable), and no more
    assert checks >= 3  # the health checks ran (each probe used to schedule a discovery)
    assert len(spawned) <= discoveries + checks + 1  # one process each (+1: a probe still running at the end)
    names = set(server.tools.values_list("name", flat=True))
    assert {"echo", "get-sum", "simulate-research-query"} <= names  # the last one is added after connect
