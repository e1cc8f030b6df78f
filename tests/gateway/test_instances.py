"""Upstream instances shared through Redis: merged across web processes, expiring, in /api/status/."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from monitoring.services import clear_status_cache
from servers.gateway import instances
from tests.monitoring.status_helpers import stdio_server


@dataclass(frozen=True)
class Snapshot:
    index: int
    label: str
    state: str = "connected"
    healthy: bool = True
    in_flight: int = 0
    latency_ms: float = 1.5
    calls: int = 10
    errors: int = 0
    pid: int | None = 4242
    restarts: int = 0


@dataclass
class Config:
    id: int
    slug: str


class PoolStandIn:
    """What instances.local_rows reads of a pool: its config and instance snapshots (plain data, no process)."""

    def __init__(self, server_id: int, *labels: str) -> None:
        self.config = Config(server_id, f"s{server_id}")
        self._snapshots = [Snapshot(index, label) for index, label in enumerate(labels)]

    def instances(self) -> list[Any]:
        return self._snapshots


@pytest.fixture(autouse=True)
def clean_cache() -> None:
    cache.clear()


def other_process(key: str, rows: dict[int, list[dict[str, Any]]], ttl: float = instances.KEY_TTL) -> None:
    cache.set(instances.KEY_PREFIX + key, rows, ttl)


def test_rows_of_every_process_are_merged_per_server() -> None:
    instances.publish(instances.local_rows([PoolStandIn(1, "#0", "#1"), PoolStandIn(2, "http://a/mcp")]))
    other_process("web-2:99", {1: [{"index": 0, "label": "#0", "healthy": False}]})

    merged = instances.all_instances()

    assert sorted(merged) == [1, 2]
    assert [(row["process"], row["label"]) for row in merged[1]] == sorted(
        [(instances.process_label(), "#0"), (instances.process_label(), "#1"), ("web-2:99", "#0")]
    )
    assert merged[2][0]["label"] == "http://a/mcp" and merged[2][0]["pid"] == 4242


def test_a_process_that_stops_publishing_drops_out() -> None:
    other_process("gone:1", {1: [{"index": 0, "label": "#0"}]}, ttl=1)
    assert 1 in instances.all_instances()

    deadline = time.monotonic() + 30
    while 1 in instances.all_instances():
        assert time.monotonic() < deadline, "the key did not expire"
        time.sleep(0.2)


def test_withdraw_removes_this_process_at_once() -> None:
    instances.publish(instances.local_rows([PoolStandIn(1, "#0")]))
    instances.withdraw()

    assert instances.all_instances() == {}


@pytest.mark.django_db
def test_status_api_lists_each_servers_instances(client: Client, admin_user: User) -> None:
    alpha, beta = stdio_server("alpha"), stdio_server("beta")
    instances.publish(instances.local_rows([PoolStandIn(alpha.pk, "#0", "#1")]))
    clear_status_cache()
    client.force_login(admin_user)

    rows = {row["slug"]: row for row in client.get("/api/status/").json()["servers"]}

    assert [i["label"] for i in rows["alpha"]["instances"]] == ["#0", "#1"]
    assert rows["alpha"]["instances"][0]["process"] == instances.process_label()
    assert rows["beta"]["instances"] == []  # not running anywhere (pools start with the first call)
    assert beta.pk not in instances.all_instances()
