"""A 2026-07-28 client's tools/call, prompts/get and resources/read passed through to the upstream, rounds included.

Such a request may take several rounds (SEP-2322): the upstream answers
`resultType: "input_required"` with `inputRequests` (and maybe a
`requestState`), the client answers them and retries with `inputResponses`
and the echoed state. The hub passes each round on, with three changes:

- the upstream's `requestState` is sealed for the client (servers.gateway.request_state)
  and opened again on the retry, so the client never holds the upstream's own state
  and no web process has to remember anything between rounds;
- the client capabilities the client declared in its `_meta` are declared upstream,
  restricted to the input kinds an `input_required` result can carry (sampling,
  elicitation, roots) and the tasks extension (servers.gateway.tasks): an upstream asks
  only what the client can answer, and the hub declares nothing the client did not;
- a resources/read result keeps the upstream's caching hints (`ttlMs`, `cacheScope`);
  one without them (a handshake-era upstream) gets the SDK's safe default, immediately
  stale and private.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp_types import CLIENT_CAPABILITIES_META_KEY

from servers.gateway.request_state import request_state_seal
from servers.gateway.scope import RequestScope
from servers.gateway.tasks import TASKS

# The client capabilities whose requests an `input_required` result can carry.
RELAYED_CAPABILITIES = ("sampling", "elicitation", "roots")
INPUT_REQUIRED = "input_required"


def declared_capabilities(params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The relayed part of the client capabilities in a request's `_meta`, or None when it declares none."""
    meta = params.get("_meta")
    capabilities = meta.get(CLIENT_CAPABILITIES_META_KEY) if isinstance(meta, dict) else None
    if not isinstance(capabilities, dict):
        return None
    relayed = {name: capabilities[name] for name in RELAYED_CAPABILITIES if name in capabilities}
    extensions = capabilities.get("extensions")
    if isinstance(extensions, dict) and TASKS in extensions:
        relayed["extensions"] = {TASKS: extensions[TASKS]}  # the server may answer with a task (servers.gateway.tasks)
    return relayed or None


def takes_rounds(params: Mapping[str, Any] | None) -> bool:
    """Whether a request of the SDK's path needs passing through: it answers a round, or its client declared
    input it can give. Other requests keep the SDK client's path (MCPHUB_FAST_PATH=0 means that path)."""
    if not params:
        return False
    return (
        params.get("inputResponses") is not None
        or params.get("requestState") is not None
        or declared_capabilities(params) is not None
    )


def upstream_params(
    scope: RequestScope, method: str, params: Mapping[str, Any], request: dict[str, Any]
) -> dict[str, Any]:
    """`request` (the upstream's own name and arguments, or uri) with what the client's `params` carry for it:
    its capabilities, its `inputResponses`, the upstream's state opened from its `requestState` (-32602 if bad)."""
    capabilities = declared_capabilities(params)
    if capabilities is not None:
        request["_meta"] = {CLIENT_CAPABILITIES_META_KEY: capabilities}
    responses = params.get("inputResponses")
    if responses is not None:
        request["inputResponses"] = responses
    state = params.get("requestState")
    if state is not None:  # an explicit null counts as absent, as in the SDK
        request["requestState"] = request_state_seal().open(scope, method, params, state)
    return request


def client_result(
    scope: RequestScope, method: str, params: Mapping[str, Any], result: dict[str, Any]
) -> dict[str, Any]:
    """The upstream's `result` as the client gets it: an interim result's state sealed (a state that is not a
    string is dropped), a resource read's caching hints completed."""
    if result.get("resultType") == INPUT_REQUIRED:
        state = result.pop("requestState", None)
        if isinstance(state, str):
            result["requestState"] = request_state_seal().seal(scope, method, params, state)
        return result
    if method == "resources/read":
        result.setdefault("ttlMs", 0)
        result.setdefault("cacheScope", "private")
    return result
