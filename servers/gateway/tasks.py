"""The tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663) through the hub, for 2026-07-28 clients.

A server that supports the extension (it advertised it at discovery: `ServerEntry.extensions`)
may answer a `tools/call` from a client that declared it with a `CreateTaskResult`
(`resultType: "task"`, a `taskId`); the client then polls `tasks/get` (the result or error
inlined once terminal), answers the task's input requests with `tasks/update` and may
`tasks/cancel` it. The hub:

- advertises the extension in its `server/discover` answer only when a server visible
  to the request supports it;
- declares the extension upstream when the client declared it (servers.gateway.rounds);
- hands the client its own task id in place of the server's: the server's id, the
  server, the tool, and the token and endpoint that created the task, sealed under
  AES-GCM (keys derived from SECRET_KEY, as servers.gateway.request_state does). Any
  web process can route a task request, nothing is kept between requests, and another
  token or endpoint cannot poll, update or cancel the task: to them the id is unknown
  (-32602, as for an id the server never gave);
- forwards `tasks/get`, `tasks/update` and `tasks/cancel` to the server that owns the
  task (with `Mcp-Name: <its task id>`), and answers with the client's id.

The handshake era has no such extension (the SDK delivers an extension's `resultType`
on the 2026-07-28 wire only): there the task methods are -32601.

Affinity: a task lives in the server instance that created it. A pool of several stdio
processes or replica URLs (servers.upstream.pool) reaches the same instance again only
with the affinity balancing policy (the token is the affinity key in this era).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from django.core.cache import cache
from mcp.server import Server
from mcp.server.request_state import AESGCMRequestStateCodec, InvalidRequestState
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import MCP_NAME_HEADER, encode_header_value
from mcp_types import CLIENT_CAPABILITIES_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from servers import outages
from servers.blocking import run_blocking
from servers.gateway.registry import ServerEntry
from servers.gateway.request_state import derived_keys
from servers.gateway.scope import Ctx, RequestScope

logger = logging.getLogger(__name__)

TASKS = "io.modelcontextprotocol/tasks"
TASK_RESULT = "task"  # the `resultType` of a CreateTaskResult
METHODS = ("tasks/get", "tasks/update", "tasks/cancel")
TERMINAL = frozenset({"completed", "failed", "cancelled"})
# How long the hub remembers that it recorded a task's final status (one record however often it is polled).
RECORDED_FOR = 24 * 3600
_VERSION = 1
_KEY_SALT = "mcphub.gateway.task-id"


@dataclass(frozen=True)
class TaskRef:
    """What a client's task id stands for: the server's task, on which server, of which tool, since when."""

    server_id: int
    tool: str
    upstream_id: str
    created: float  # time.time() when the hub handed the task to the client


def advertised(entries: Iterable[ServerEntry]) -> dict[str, dict[str, Any]] | None:
    """The extensions to advertise for these visible servers: the tasks extension when one supports it
    (with the server's settings when it is the only one)."""
    supporting = [entry.extensions[TASKS] for entry in entries if TASKS in entry.extensions]
    if not supporting:
        return None
    settings = supporting[0] if len(supporting) == 1 and isinstance(supporting[0], dict) else {}
    return {TASKS: settings}


def discover_result(server: Server[Any], protocol_version: str, entries: Iterable[ServerEntry]) -> types.DiscoverResult:
    """The SDK's own `server/discover` answer, with the extensions of the visible servers."""
    return types.DiscoverResult(
        supported_versions=list(MODERN_PROTOCOL_VERSIONS),
        capabilities=server.get_capabilities(protocol_version=protocol_version, extensions=advertised(entries)),
        instructions=server.instructions,
    )


class TaskIdSeal:
    """Seals a server's task id for one token and endpoint, and opens the client's id again."""

    def __init__(self, keys: list[bytes]) -> None:
        self._codec = AESGCMRequestStateCodec(keys)

    def seal(self, scope: RequestScope, entry: ServerEntry, tool: str, upstream_id: str) -> str:
        claims = {
            "v": _VERSION,
            "iat": time.time(),
            "k": scope.token.id,
            "e": scope.slug or "",
            "s": entry.id,
            "n": tool,
            "t": upstream_id,
        }
        return self._codec.seal(json.dumps(claims, separators=(",", ":")).encode())

    def open(self, scope: RequestScope, task_id: str) -> TaskRef | None:
        """The task behind `task_id`, None when the hub did not mint it for this token and endpoint."""
        try:
            claims = json.loads(self._codec.unseal(task_id))
        except (InvalidRequestState, ValueError):
            return None
        if not isinstance(claims, dict) or claims.get("v") != _VERSION:
            return None
        if claims.get("k") != scope.token.id or claims.get("e") != (scope.slug or ""):
            return None
        server_id, tool, upstream_id, created = claims.get("s"), claims.get("n"), claims.get("t"), claims.get("iat")
        if not (isinstance(server_id, int) and isinstance(tool, str) and isinstance(upstream_id, str)):
            return None
        return TaskRef(server_id, tool, upstream_id, created if isinstance(created, int | float) else time.time())


@functools.cache
def task_id_seal() -> TaskIdSeal:
    return TaskIdSeal(derived_keys(_KEY_SALT))


def client_task(scope: RequestScope, entry: ServerEntry, tool: str, result: dict[str, Any]) -> dict[str, Any]:
    """A server's CreateTaskResult as the client gets it: the task id sealed."""
    upstream_id = result.get("taskId")
    if isinstance(upstream_id, str):
        result["taskId"] = task_id_seal().seal(scope, entry, tool, upstream_id)
    return result


def unknown_task(task_id: str) -> MCPError:
    return MCPError(types.INVALID_PARAMS, f"Unknown task: {task_id}")


def declared(ctx: Ctx) -> bool:
    capabilities = ctx.session.client_capabilities
    return bool(capabilities and capabilities.extensions and TASKS in capabilities.extensions)


def checked_request(ctx: Ctx, scope: RequestScope, task_id: str) -> TaskRef:
    """The task a tasks/* request names, after the extension's checks: -32601 in the handshake era,
    -32021 for a client that did not declare the extension, -32020 for an `Mcp-Name` header other than
    the task id, -32602 for an id the hub did not mint for this token and endpoint."""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        raise MCPError(types.METHOD_NOT_FOUND, "Method not found", ctx.method)
    if not declared(ctx):
        raise MCPError(
            types.MISSING_REQUIRED_CLIENT_CAPABILITY,
            f"Client did not declare required extension {TASKS!r}",
            {"requiredCapabilities": {"extensions": {TASKS: {}}}},
        )
    named = ctx.request.headers.get(MCP_NAME_HEADER) if ctx.request is not None else None
    if named is not None and named.strip() != task_id:
        raise MCPError(types.HEADER_MISMATCH, "Mcp-Name header does not match params.taskId")
    ref = task_id_seal().open(scope, task_id)
    if ref is None:
        raise unknown_task(task_id)
    return ref


def upstream_request(ref: TaskRef, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The params (the server's task id, the extension declared) and the routing header of the request upstream."""
    request = {key: value for key, value in params.items() if key not in ("taskId", "_meta")}
    request["taskId"] = ref.upstream_id
    request["_meta"] = {CLIENT_CAPABILITIES_META_KEY: {"extensions": {TASKS: {}}}}
    return request, {MCP_NAME_HEADER: encode_header_value(ref.upstream_id)}


def final_outcome(result: Mapping[str, Any]) -> tuple[str, str, int | None] | None:
    """How a task ended as the request log words it (outcome, error, code); None while it runs."""
    status = result.get("status")
    if status == "completed":
        inner = result.get("result")
        return ("tool_error" if isinstance(inner, dict) and inner.get("isError") else "ok"), "", None
    if status == "failed":
        error = result.get("error")
        error = error if isinstance(error, dict) else {}
        code = error.get("code")
        return "protocol_error", str(error.get("message", "task failed")), code if isinstance(code, int) else None
    if status == "cancelled":
        return "protocol_error", "task cancelled", None
    return None


async def first_sight(task_id: str) -> bool:
    """Whether no process recorded this task's final status yet (Redis remembers); True when Redis is away."""
    key = "mcphub:task-final:" + hashlib.sha256(task_id.encode()).hexdigest()[:32]
    try:
        added: bool = await run_blocking(cache.add, key, 1, RECORDED_FOR)
    except outages.CACHE_ERRORS as exc:
        outages.redis.failed("recording a task's final status once", exc)
        return True
    return added
