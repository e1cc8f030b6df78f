"""Balancing policies of an upstream pool: which instance takes the next call.

Pure and synchronous: `pick()` sees only the candidates' labels and load figures,
so each policy is unit-tested without processes. The pool passes only the
instances in rotation (healthy, and with a free slot unless the policy is sticky).
"""

from __future__ import annotations

import hashlib
import itertools
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, Protocol, TypeVar

# Below this a latency figure is noise (and would give one instance an unbounded weight).
LATENCY_FLOOR_MS = 1.0
# An instance with errors keeps a trickle of calls so that its error rate can recover.
MAX_ERROR_RATE = 0.95


class Candidate(Protocol):
    """What a policy may look at; the pool's instances provide it."""

    @property
    def label(self) -> str: ...

    @property
    def in_flight(self) -> int: ...

    @property
    def latency_ms(self) -> float: ...  # recent latency (EWMA); 0 when nothing was measured yet

    @property
    def error_rate(self) -> float: ...  # recent share of failed calls, 0..1


C = TypeVar("C", bound=Candidate)


class Policy(ABC):
    name: ClassVar[str]
    # A sticky policy's pick must not be swapped for another instance just because it is busy:
    # the pool waits for a slot on it instead.
    sticky: ClassVar[bool] = False

    @abstractmethod
    def pick(self, candidates: Sequence[C], key: str | None = None) -> C:
        """One of `candidates` (never empty); `key` identifies the caller (affinity)."""


class RoundRobin(Policy):
    name = "round_robin"

    def __init__(self) -> None:
        self._turn = itertools.count()

    def pick(self, candidates: Sequence[C], key: str | None = None) -> C:
        return candidates[next(self._turn) % len(candidates)]


class LeastConnections(Policy):
    """Fewest calls in flight; ties taken in turn (else idle instances would all lose to the first)."""

    name = "least_connections"

    def __init__(self) -> None:
        self._turn = itertools.count()

    def pick(self, candidates: Sequence[C], key: str | None = None) -> C:
        lowest = min(candidate.in_flight for candidate in candidates)
        tied = [candidate for candidate in candidates if candidate.in_flight == lowest]
        return tied[next(self._turn) % len(tied)]


class Weighted(Policy):
    """Random choice weighted by speed and success: weight = (1 - error rate) / latency.

    An instance not measured yet gets the mean latency of the measured ones, so a new
    replica is neither starved nor flooded.
    """

    name = "weighted"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._random = rng or random.Random()

    def pick(self, candidates: Sequence[C], key: str | None = None) -> C:
        return self._random.choices(candidates, weights=self.weights(candidates))[0]

    @staticmethod
    def weights(candidates: Sequence[Candidate]) -> list[float]:
        measured = [c.latency_ms for c in candidates if c.latency_ms > 0]
        default = sum(measured) / len(measured) if measured else LATENCY_FLOOR_MS
        return [
            (1.0 - min(c.error_rate, MAX_ERROR_RATE)) / max(c.latency_ms or default, LATENCY_FLOOR_MS)
            for c in candidates
        ]


class Affinity(Policy):
    """The same key always reaches the same instance while that instance is in rotation.

    Rendezvous hashing: each (key, label) pair gets a score and the highest wins, so a key
    moves only when its own instance leaves, and comes back when it returns. Calls
    without a key are balanced by least connections.
    """

    name = "affinity"
    sticky = True

    def __init__(self) -> None:
        self._fallback = LeastConnections()

    def pick(self, candidates: Sequence[C], key: str | None = None) -> C:
        if not key:
            return self._fallback.pick(candidates)
        return max(candidates, key=lambda candidate: _score(key, candidate.label))


def _score(key: str, label: str) -> int:
    digest = hashlib.blake2b(f"{key}\0{label}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


POLICIES: dict[str, type[Policy]] = {cls.name: cls for cls in (RoundRobin, LeastConnections, Weighted, Affinity)}


def make_policy(name: str) -> Policy:
    """A fresh policy by its stored name (an unknown name falls back to least connections)."""
    return POLICIES.get(name, LeastConnections)()
