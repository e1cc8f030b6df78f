"""The hub's `requestState` (2026-07-28 multi-round requests, SEP-2322): the upstream's state, sealed.

An upstream's `input_required` result may carry a `requestState` that the
client must echo on its retry. The hub never hands the upstream's own state to
the client: it seals it, with the request it answers and the token and endpoint
that asked, under AES-256-GCM (the SDK's `AESGCMRequestStateCodec`; keys derived
from SECRET_KEY, then SECRET_KEY_FALLBACKS, so rotating SECRET_KEY keeps states
minted before it readable). The client sees an opaque token it cannot read or
alter, another token or endpoint cannot use it, and any web process holding the
same SECRET_KEY can open it: the hub keeps nothing between rounds.

A state that fails any check is refused as the SDK's own boundary
(`mcp.server.request_state.RequestStateBoundary`) refuses it: -32602
"Invalid or expired requestState", the reason in the hub's log only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from typing import Any, NoReturn

import mcp_types as types
from django.conf import settings
from django.utils.crypto import salted_hmac
from mcp.server.request_state import AESGCMRequestStateCodec, InvalidRequestState
from mcp.shared.exceptions import MCPError

from servers.gateway.scope import RequestScope

logger = logging.getLogger(__name__)

TTL_SECONDS = 600.0  # as the SDK's default: a client has ten minutes to answer a round
_VERSION = 1
_FUTURE_SKEW = 60.0
_KEY_SALT = "mcphub.gateway.request-state"


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _identity(method: str, params: Mapping[str, Any]) -> tuple[str, str]:
    """What a state is bound to besides its holder: the request's target (as the client names it) and
    a digest of its arguments, so a state is good for a retry of that very request only."""
    if method == "resources/read":
        return str(params.get("uri", "")), ""
    return str(params.get("name", "")), _digest(params.get("arguments") or {})


def reject(method: str, reason: str) -> NoReturn:
    logger.warning("requestState refused on %s: %s", method, reason)
    raise MCPError(types.INVALID_PARAMS, "Invalid or expired requestState", {"reason": "invalid_request_state"})


class RequestStateSeal:
    """Seals an upstream's `requestState` for one client request, and opens the client's echo of it."""

    def __init__(self, keys: list[bytes], ttl: float = TTL_SECONDS) -> None:
        self._codec = AESGCMRequestStateCodec(keys)
        self._ttl = ttl

    def seal(self, scope: RequestScope, method: str, params: Mapping[str, Any], upstream_state: str) -> str:
        """The state to give the client in place of `upstream_state`, for the request `method`/`params`."""
        target, arguments = _identity(method, params)
        now = time.time()
        claims = {
            "v": _VERSION,
            "iat": now,
            "exp": now + self._ttl,
            "m": method,
            "t": target,
            "a": arguments,
            "k": scope.token.id,
            "e": scope.slug or "",
            "s": upstream_state,
        }
        return self._codec.seal(json.dumps(claims, separators=(",", ":")).encode())

    def open(self, scope: RequestScope, method: str, params: Mapping[str, Any], sealed: object) -> str:
        """The upstream's state inside the client's echo `sealed`; -32602 for anything the hub did not mint
        for this token, endpoint and request, or minted more than the TTL ago."""
        if not isinstance(sealed, str):
            reject(method, "not a string")
        try:
            claims = json.loads(self._codec.unseal(sealed))
        except InvalidRequestState as exc:
            reject(method, str(exc))
        except ValueError:
            reject(method, "malformed")
        if not isinstance(claims, dict) or claims.get("v") != _VERSION or not isinstance(claims.get("s"), str):
            reject(method, "malformed")
        now = time.time()
        issued, expires = claims.get("iat"), claims.get("exp")
        if not isinstance(issued, int | float) or not issued <= now + _FUTURE_SKEW:
            reject(method, "minted in the future")
        if not isinstance(expires, int | float) or not now < expires:
            reject(method, "expired")
        if claims.get("k") != scope.token.id or claims.get("e") != (scope.slug or ""):
            reject(method, "minted for another token or endpoint")
        target, arguments = _identity(method, params)
        if claims.get("m") != method or claims.get("t") != target or claims.get("a") != arguments:
            reject(method, "minted for another request")
        upstream_state: str = claims["s"]
        return upstream_state


def derived_keys(salt: str) -> list[bytes]:
    """AES-256 keys for `salt`, derived from SECRET_KEY (the first: it seals) and SECRET_KEY_FALLBACKS (also open)."""
    secrets = dict.fromkeys([settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])])
    return [salted_hmac(salt, "key", secret=secret, algorithm="sha256").digest() for secret in secrets]


@functools.cache
def request_state_seal() -> RequestStateSeal:
    """The process's seal, keyed from SECRET_KEY (seals) and SECRET_KEY_FALLBACKS (also open)."""
    return RequestStateSeal(derived_keys(_KEY_SALT))
