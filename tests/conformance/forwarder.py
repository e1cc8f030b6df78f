"""A loopback HTTP hop that adds `Authorization: Bearer <token>` to every request, for clients that cannot.

The conformance suite's CLI sends no custom headers, and the hub wants a token. The hop
is transparent otherwise: method, path, query, body and the other request headers (Host
and Origin included, which the suite's DNS-rebinding checks set on purpose) go through
as sent; the response's status, headers and body come back as the hub sends them, the
body chunk by chunk as it arrives (SSE streams unbuffered). A client that hangs up
cancels its upstream request, so the hub sees the disconnect too.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
from aiohttp import web

from tests.conftest import free_port

# Hop-by-hop headers (RFC 9110 7.6.1) and the framing each side sets for itself.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "content-length"}
)

SESSION = web.AppKey("session", aiohttp.ClientSession)
UNSENT = ("Accept", "Accept-Encoding", "Content-Type", "User-Agent")


def end_to_end(headers: object) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers.items() if name.lower() not in HOP_BY_HOP]  # type: ignore[attr-defined]


@contextmanager
def bearer_forwarder(target: str, token: str) -> Iterator[str]:
    """Forward a loopback port to `target` (scheme://host:port), adding the bearer `token`; yields its base URL."""
    port = free_port()
    ready, stopping = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    async def forward(request: web.Request) -> web.StreamResponse:
        headers = [(n, v) for n, v in end_to_end(request.headers) if n.lower() != "authorization"]
        headers.append(("Authorization", f"Bearer {token}"))
        async with request.app[SESSION].request(
            request.method,
            target + request.path_qs,
            headers=headers,
            data=await request.read() or None,
            allow_redirects=False,
        ) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in end_to_end(upstream.headers):
                response.headers.add(name, value)
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except ConnectionResetError:  # the client hung up first (aiohttp's own error derives from it)
                pass
            return response

    async def serve() -> None:
        # Bytes as sent (no decompression), no time limit (SSE streams stay open), and none of the headers
        # aiohttp would add when the client sent none (the suite checks how the hub treats a missing one).
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        async with aiohttp.ClientSession(auto_decompress=False, timeout=timeout, skip_auto_headers=UNSENT) as session:
            app = web.Application()
            app[SESSION] = session
            app.router.add_route("*", "/{tail:.*}", forward)
            runner = web.AppRunner(app, handler_cancellation=True, access_log=None)  # a hang-up cancels the hop
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            ready.set()
            while not stopping.is_set():
                await asyncio.sleep(0.1)
            await runner.cleanup()

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as error:  # reported to the test's thread
            failure.append(error)
            ready.set()

    thread = threading.Thread(target=run, name="bearer-forwarder", daemon=True)
    thread.start()
    ready.wait(timeout=30)
    if failure:
        raise failure[0]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stopping.set()
        thread.join(timeout=30)
