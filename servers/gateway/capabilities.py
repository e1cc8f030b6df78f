"""The capabilities the hub advertises to a client: those it relays for the servers the client can see.

The SDK derives the hub's capabilities from its handlers, and the hub has a handler for every
feature (logging, completions, subscriptions...), so every client would be told of every feature.
`advertised` keeps a feature only when at least one visible server offers it, as it announced at
its last discovery; the hub's own list-change flags stay as the SDK sets them (the hub emits those).
A server not discovered since capabilities were recorded counts as offering what it lists.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from servers.gateway.registry import ServerEntry

FEATURES = ("tools", "prompts", "resources", "logging", "completions")


def offered(entry: ServerEntry) -> dict[str, Any]:
    """The server's capabilities (wire JSON); for one not yet recorded, the features it has items of."""
    if entry.capabilities is not None:
        return entry.capabilities
    listed = {"tools": entry.tools, "prompts": entry.prompts, "resources": entry.resources}
    return {feature: {} for feature, items in listed.items() if items}


def advertised(capabilities: dict[str, Any], servers: Iterable[ServerEntry]) -> dict[str, Any]:
    """The hub's `capabilities` (wire JSON, as the SDK derived them) cut to what `servers` offer.

    `resources.subscribe` when a server offers it, in both eras: the hub forwards `resources/subscribe`
    (handshake era) and the `resourceSubscriptions` of `subscriptions/listen` (2026-07-28).
    """
    offers = [offered(entry) for entry in servers]
    result = {name: value for name, value in capabilities.items() if name not in FEATURES}
    for feature in FEATURES:
        if feature in capabilities and any(isinstance(offer.get(feature), dict) for offer in offers):
            result[feature] = dict(capabilities[feature])
    resources = result.get("resources")
    if resources is not None:
        subscribe = any(offer.get("resources", {}).get("subscribe") is True for offer in offers)
        if subscribe:
            resources["subscribe"] = True
        else:
            resources.pop("subscribe", None)
    return result
