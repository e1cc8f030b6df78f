"""The resources whose updates an upstream connection must report: what the hub's clients subscribed to.

One `ResourceWatch` per server and era variant, owned by the upstream manager, so that it outlives
a reconnect, a pool replacement and an idle stop: every connection applies the current set when it
connects and whenever it changes (a `resources/subscribe` per URI in the handshake era, the
`resourceSubscriptions` of its `subscriptions/listen` stream in the 2026-07-28 era). Each URI is
counted once per downstream subscriber; the last one gone unsubscribes upstream.
"""

from __future__ import annotations

from collections import Counter

import anyio


class ResourceWatch:
    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._changed: anyio.Event | None = None  # created in the event loop, on first wait

    @property
    def uris(self) -> frozenset[str]:
        return frozenset(self._counts)

    def add(self, uri: str) -> None:
        self._counts[uri] += 1
        if self._counts[uri] == 1:
            self._signal()

    def discard(self, uri: str) -> None:
        if uri not in self._counts:
            return
        self._counts[uri] -= 1
        if self._counts[uri] <= 0:
            del self._counts[uri]
            self._signal()

    def next_change(self) -> anyio.Event:
        """Set at the next change of `uris`: take it before reading them, so no change is missed."""
        if self._changed is None:
            self._changed = anyio.Event()
        return self._changed

    def _signal(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None
