"""A minimal MCP server over HTTP (raw ASGI under uvicorn), for benchmarks only.

It answers server/discover, tools/list and tools/call(echo) with plain JSON and
no SDK machinery, so that it is never the bottleneck when measuring the hub.
It speaks 2026-07-28 and, for gateways that still open sessions upstream (e.g.
ContextForge, benchmarks/peers.py), the handshake era too: `initialize` is
answered (no Mcp-Session-Id: stateless), `notifications/initialized` gets 202,
and a request whose MCP-Protocol-Version header names a handshake-era version
gets its results without the 2026-07-28 fields.

    python benchmarks/lean_upstream.py PORT [--modern-only]

With --modern-only it refuses the handshake (`initialize` is -32601), as a 2026-07-28-only server does.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import uvicorn

DISCOVER = {
    "cacheScope": "private",
    "capabilities": {"tools": {"listChanged": False}},
    "resultType": "complete",
    "supportedVersions": ["2026-07-28"],
    "ttlMs": 0,
}
TOOLS = {
    "cacheScope": "private",
    "ttlMs": 0,
    "resultType": "complete",
    "tools": [
        {
            "name": "echo",
            "description": "Return the given text.",
            "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        }
    ],
}


HANDSHAKE_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
MODERN_ONLY = ("cacheScope", "ttlMs", "resultType")


def initialize(params: dict[str, Any]) -> dict[str, Any]:
    asked = params.get("protocolVersion")
    return {
        "protocolVersion": asked if asked in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[0],
        "capabilities": {"tools": {"listChanged": False}},
        "serverInfo": {"name": "lean-upstream", "version": "1"},
    }


MODERN_ONLY_SERVER = "--modern-only" in sys.argv


def result_for(method: str, params: dict[str, Any]) -> dict[str, Any] | None:
    if method == "initialize":
        return None if MODERN_ONLY_SERVER else initialize(params)
    if method == "server/discover":
        return DISCOVER
    if method == "tools/list":
        return TOOLS
    if method == "tools/call":
        text = str((params.get("arguments") or {}).get("text", ""))
        return {"content": [{"type": "text", "text": text}], "isError": False, "resultType": "complete"}
    if method == "ping":
        return {}
    return None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    status, payload = 202, b""
    if scope["method"] == "POST" and body:
        request = json.loads(body)
        if "id" in request:
            result = result_for(request["method"], request.get("params") or {})
            if result and dict(scope["headers"]).get(b"mcp-protocol-version", b"").decode() in HANDSHAKE_VERSIONS:
                result = {key: value for key, value in result.items() if key not in MODERN_ONLY}
            response: dict[str, Any] = {"jsonrpc": "2.0", "id": request["id"]}
            if result is None:
                response["error"] = {"code": -32601, "message": "method not found"}
            else:
                response["result"] = result
            status, payload = 200, json.dumps(response, separators=(",", ":")).encode()
    elif scope["method"] != "POST":
        status = 405
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
