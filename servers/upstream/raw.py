"""Requests passed through as JSON on an SDK client's connection (stdio, and handshake-era servers).

The hub is a proxy: what a 2026-07-28 server answers a tools/call, prompts/get or
resources/read goes back to the client as sent, an `input_required` result
(SEP-2322) or caching hints included. The SDK client would validate the result,
drive an `input_required` loop itself and stamp its own (empty) client
capabilities on the request; `send_raw` sends the request with the downstream
client's envelope instead. HTTP upstreams of that era take `relay.post_request`.
"""

from __future__ import annotations

from typing import Any

from mcp import Client

from servers.upstream import relay


async def send_raw(client: Client, method: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One stateless-era request on the client's stream, its result as the server sent it (MCPError for an error)."""
    # The session offers no public raw send: its own would overwrite our `_meta` envelope.
    dispatcher = client.session._dispatcher
    return await dispatcher.send_raw_request(
        method, relay.envelope(client.protocol_version, params), {"timeout": timeout}
    )


async def handshake_request(client: Client, method: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
    """A handshake-era server's answer through the SDK client, dumped as JSON.

    That era has no multi-round requests: `inputResponses`, `requestState` and `_meta` are not sent.
    """
    result: Any
    if method == "tools/call":
        result = await client.call_tool(params["name"], params.get("arguments"), read_timeout_seconds=timeout)
    elif method == "prompts/get":
        result = await client.get_prompt(params["name"], params.get("arguments"))
    elif method == "resources/read":
        result = await client.read_resource(params["uri"])
    else:
        raise ValueError(f"not a request the hub passes through: {method}")
    dumped: dict[str, Any] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped
