"""A minimal 2026-07-28 MCP server over HTTP (raw ASGI under uvicorn), for benchmarks only.

It answers server/discover, tools/list and tools/call(echo) with plain JSON and
no SDK machinery, so that it is never the bottleneck when measuring the hub.

    python benchmarks/lean_upstream.py PORT
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


def result_for(method: str, params: dict[str, Any]) -> dict[str, Any] | None:
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
