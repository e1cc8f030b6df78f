"""Balancing policies, alone: distribution over many picks, least-loaded choice, affinity stability."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import pytest

from servers.upstream.balancing import (
    POLICIES,
    Affinity,
    LeastConnections,
    RoundRobin,
    Weighted,
    make_policy,
)

PICKS = 30_000


@dataclass
class Member:
    label: str
    in_flight: int = 0
    latency_ms: float = 0.0
    error_rate: float = 0.0


def members(count: int) -> list[Member]:
    return [Member(f"#{i}") for i in range(count)]


def shares(counts: Counter[str], labels: list[str]) -> list[float]:
    total = sum(counts.values())
    return [counts[label] / total for label in labels]


def test_round_robin_is_even_and_in_turn() -> None:
    policy = RoundRobin()
    pool = members(3)

    picks = [policy.pick(pool).label for _ in range(9)]

    assert picks == ["#0", "#1", "#2"] * 3


def test_least_connections_takes_the_least_loaded() -> None:
    pool = [Member("#0", in_flight=3), Member("#1", in_flight=1), Member("#2", in_flight=2)]

    assert {LeastConnections().pick(pool).label for _ in range(10)} == {"#1"}


def test_least_connections_spreads_ties_evenly() -> None:
    policy = LeastConnections()
    pool = members(4)

    counts = Counter(policy.pick(pool).label for _ in range(PICKS))

    assert shares(counts, ["#0", "#1", "#2", "#3"]) == pytest.approx([0.25] * 4, abs=0.01)


def test_least_connections_evens_out_a_closed_loop_load() -> None:
    """Calls that stay in flight: the load stays balanced within one call."""
    policy = LeastConnections()
    pool = members(3)
    for _ in range(31):
        policy.pick(pool).in_flight += 1

    assert max(m.in_flight for m in pool) - min(m.in_flight for m in pool) <= 1


def test_weighted_follows_latency() -> None:
    policy = Weighted(random.Random(7))
    pool = [Member("fast", latency_ms=10), Member("slow", latency_ms=30)]

    counts = Counter(policy.pick(pool).label for _ in range(PICKS))

    assert shares(counts, ["fast", "slow"]) == pytest.approx([0.75, 0.25], abs=0.02)


def test_weighted_avoids_an_instance_with_errors() -> None:
    policy = Weighted(random.Random(7))
    pool = [Member("ok", latency_ms=20), Member("failing", latency_ms=20, error_rate=0.8)]

    counts = Counter(policy.pick(pool).label for _ in range(PICKS))

    # Weights 1.0 and 0.2: the failing instance keeps a trickle, so it can show it recovered.
    assert shares(counts, ["ok", "failing"]) == pytest.approx([1 / 1.2, 0.2 / 1.2], abs=0.02)


def test_weighted_gives_an_unmeasured_instance_the_mean_latency() -> None:
    pool = [Member("a", latency_ms=10), Member("b", latency_ms=30), Member("new")]

    weights = Weighted.weights(pool)

    assert weights[2] == pytest.approx(1 / 20)
    assert Weighted.weights(members(2)) == [1.0, 1.0]  # nothing measured yet: even


def test_affinity_keeps_each_key_on_one_instance() -> None:
    policy = Affinity()
    pool = members(4)

    for key in (f"session:{i}" for i in range(200)):
        assert len({policy.pick(pool, key).label for _ in range(5)}) == 1


def test_affinity_spreads_keys_evenly() -> None:
    policy = Affinity()
    pool = members(4)

    counts = Counter(policy.pick(pool, f"token:{i}").label for i in range(20_000))

    assert shares(counts, ["#0", "#1", "#2", "#3"]) == pytest.approx([0.25] * 4, abs=0.02)


def test_affinity_moves_only_the_keys_of_an_instance_that_left() -> None:
    policy = Affinity()
    pool = members(4)
    keys = [f"session:{i}" for i in range(2000)]
    before = {key: policy.pick(pool, key).label for key in keys}

    without_2 = [m for m in pool if m.label != "#2"]
    after = {key: policy.pick(without_2, key).label for key in keys}
    back = {key: policy.pick(pool, key).label for key in keys}

    moved = {key for key in keys if before[key] != after[key]}
    assert moved == {key for key in keys if before[key] == "#2"}
    assert back == before  # the instance came back: its keys return to it


def test_affinity_without_a_key_balances_by_load() -> None:
    pool = [Member("#0", in_flight=2), Member("#1", in_flight=0)]

    assert Affinity().pick(pool, None).label == "#1"


def test_policies_by_name() -> None:
    assert set(POLICIES) == {"round_robin", "least_connections", "weighted", "affinity"}
    assert isinstance(make_policy("affinity"), Affinity)
    assert isinstance(make_policy("nonsense"), LeastConnections)
    assert Affinity.sticky and not LeastConnections.sticky
