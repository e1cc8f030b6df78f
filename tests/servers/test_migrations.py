"""Data migrations of the registry, run for real on the test database (back to a state, then forward)."""

from __future__ import annotations

import sys

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from servers.models import McpServer

BEFORE_CLAMP = [("servers", "0005_access_token_revoked_at")]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_numbers_stored_before_the_bounds_are_brought_into_them() -> None:
    executor = MigrationExecutor(connection)
    latest = [node for node in executor.loader.graph.leaf_nodes() if node[0] == "servers"]
    executor.migrate(BEFORE_CLAMP)
    old = executor.loader.project_state(BEFORE_CLAMP).apps.get_model("servers", "McpServer")
    old.objects.create(
        name="a",
        slug="a",
        command=sys.executable,
        connect_timeout=float("nan"),
        call_timeout=1e300,
        max_concurrent_calls=10**6,
        health_check_interval=0,
        idle_timeout=10**7,
        instance_max_concurrent_calls=5000,
    )
    old.objects.create(name="b", slug="b", command=sys.executable, connect_timeout=7, call_timeout=90)

    MigrationExecutor(connection).migrate(latest)

    a, b = McpServer.objects.get(slug="a"), McpServer.objects.get(slug="b")
    assert (a.connect_timeout, a.call_timeout, a.max_concurrent_calls) == (300, 3600, 1000)
    assert (a.health_check_interval, a.idle_timeout, a.instance_max_concurrent_calls) == (1, 604800, 1000)
    a.full_clean()
    assert (b.connect_timeout, b.call_timeout, b.max_concurrent_calls) == (7, 90, 16)  # in bounds: untouched
