"""What the hub calls on an upstream server, be it one `UpstreamSession` or an `UpstreamPool` of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

import mcp_types as types
from mcp.shared.dispatcher import ProgressFnT
from pydantic import BaseModel

from servers.upstream.config import UpstreamConfig

# Called with (progress, total, message) for each progress notification of a call: the SDK's type.
ProgressCallback = ProgressFnT
ResultT = TypeVar("ResultT", bound=BaseModel)


class Upstream(Protocol):
    """The gateway's forwarded requests, discovery's listings and the probes' ping.

    `affinity` identifies the caller (downstream session, else token): a pool with the
    affinity policy keeps each caller on one instance; one session has one connection and
    ignores it. Every failure before a result comes back is an `UpstreamError`; an error
    the server answered is an `MCPError`.
    """

    config: UpstreamConfig

    @property
    def protocol_version(self) -> str: ...

    @property
    def server_capabilities(self) -> types.ServerCapabilities | None:
        """What the server announced on its live connection (None: not connected)."""
        ...

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | None,
        progress_callback: ProgressCallback | None = None,
        timeout: float | None = None,
        *,
        affinity: str | None = None,
        param_headers: Mapping[str, str] | None = None,
        relay: bool = False,
    ) -> types.CallToolResult:
        """A tools/call, typed. `relay`: a 2026-07-28 server may be reached with a raw POST (the hot path,
        MCPHUB_FAST_PATH); `param_headers`: the `Mcp-Param-*` headers its tool declares (x-mcp-header)."""
        ...

    async def request_json(
        self,
        method: str,
        params: dict[str, Any],
        param_headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        *,
        affinity: str | None = None,
    ) -> dict[str, Any]:
        """tools/call, prompts/get or resources/read, its result as JSON, unvalidated (a proxy passes it on).

        `params` are the request's params as the server should get them (name and arguments,
        or uri; `inputResponses` and `requestState` on a retried multi-round request); their
        `_meta` holds only the client capabilities to declare (none when absent). The level of the
        current log route (servers.upstream.log_routes) is added to it, and the log messages the
        server sends for the request go to that route.
        """
        ...

    async def read_resource(self, uri: str, *, affinity: str | None = None) -> types.ReadResourceResult: ...

    async def get_prompt(
        self, name: str, arguments: dict[str, str] | None, *, affinity: str | None = None
    ) -> types.GetPromptResult: ...

    async def send(
        self, request: types.ClientRequest, result_type: type[ResultT], *, affinity: str | None = None
    ) -> ResultT: ...

    async def list_tools(self) -> list[types.Tool]: ...

    async def list_resources(self) -> list[types.Resource]: ...

    async def list_prompts(self) -> list[types.Prompt]: ...

    async def ping(self) -> None: ...
