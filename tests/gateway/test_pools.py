"""Pools through /mcp end to end: replicas behind the hub, spread by policy, a client kept on one by affinity,
and each instance reported by /api/status/, /metrics and the dashboard's server page."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import pytest
from django.contrib.auth.models import User
from django.test import Client as PageClient
from mcp import Client
from prometheus_client.parser import text_string_to_metric_families

from servers import services
from tests.conftest import hub_env, run_web, wait_for
from tests.gateway.conftest import Hub, register_fixture

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def pool_hub(transactional_db: None) -> Iterator[Hub]:
    """`spread`: 2 stdio replicas, round robin; `sticky`: 3 replicas, session affinity."""
    register_fixture("spread", min_instances=2, max_instances=2, balancing_policy="round_robin")
    register_fixture("sticky", min_instances=3, max_instances=3, balancing_policy="affinity")
    _token, secret = services.create_token("pools")
    with run_web(hub_env()) as server:
        yield Hub(server.url, secret, server)


async def pids(client: Client, tool: str, calls: int) -> list[int]:
    return [int((await client.call_tool(tool, {})).content[0].text) for _ in range(calls)]


async def test_round_robin_spreads_calls_over_the_replicas(pool_hub: Hub) -> None:
    async with pool_hub.client() as client:
        counts = Counter(await pids(client, "spread__pid", 12))

    assert sorted(counts.values()) == [6, 6]


@pytest.mark.parametrize("mode", ["auto", "legacy"], ids=["token", "session"])
async def test_affinity_keeps_a_client_on_one_replica(pool_hub: Hub, mode: str) -> None:
    seen: list[set[int]] = []
    for _ in range(8 if mode == "legacy" else 1):
        async with pool_hub.client(mode=mode) as client:
            seen.append(set(await pids(client, "sticky__pid", 4)))

    assert all(len(replica) == 1 for replica in seen), seen
    if mode == "legacy":  # each handshake-era session is its own key: 8 sessions do not all share one replica
        assert len(set().union(*seen)) >= 2


def reported_instances(hub: Hub, slug: str) -> list[dict[str, Any]]:
    response = httpx2.get(hub.url + "/api/status/", headers={"Authorization": f"Bearer {hub.token}"}, timeout=30)
    (row,) = [row for row in response.json()["servers"] if row["slug"] == slug]
    return row["instances"]


def instance_samples(hub: Hub, name: str, slug: str) -> dict[str, float]:
    response = httpx2.get(hub.url + "/metrics", headers={"Authorization": f"Bearer {hub.token}"}, timeout=30)
    return {
        sample.labels.get("instance", ""): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == name and sample.labels.get("server") == slug
    }


async def test_each_instance_is_reported_in_status_metrics_and_dashboard(pool_hub: Hub) -> None:
    async with pool_hub.client() as client:
        served = set(await pids(client, "spread__pid", 6))

    def check() -> None:
        # The web process publishes its instances every few seconds; the status overview is cached 2 s.
        rows = wait_for(
            lambda: (rows := reported_instances(pool_hub, "spread")) and sum(r["calls"] for r in rows) >= 6 and rows,
            timeout=60,
            what="both replicas and their calls in /api/status/",
        )
        assert sorted(row["label"] for row in rows) == ["#0", "#1"]  # type: ignore[union-attr]
        assert {row["pid"] for row in rows} == served  # type: ignore[union-attr]
        assert all(row["healthy"] and row["state"] == "connected" for row in rows)  # type: ignore[union-attr]

        assert instance_samples(pool_hub, "mcphub_upstream_instances", "spread") == {"": 2.0}
        calls = instance_samples(pool_hub, "mcphub_upstream_instance_calls_total", "spread")
        assert calls == {"#0": 3.0, "#1": 3.0}  # round robin

        page = PageClient()
        page.force_login(User.objects.create_user("ops", is_staff=True))
        html = page.get("/servers/spread/").content.decode()
        assert all(f">{pid}<" in html for pid in served) and "round robin" in html

    await anyio.to_thread.run_sync(check)
