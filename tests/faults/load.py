"""A bounded load on /mcp: a few clients of both protocol eras calling tools for as long as a block runs.

Every call is keyed so that its request-log row can be found: the request-log keeps the request's
size (``request_bytes``, from Content-Length) and the token, and no value the client chose otherwise
(neither the JSON-RPC id nor the arguments). So each call's body is padded to a length of its own:
the key. One token per test, so a test's rows are its own; key -> rows tells lost and doubled records.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2

from tests.conftest import sse_messages

logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per request otherwise

STATELESS = "2026-07-28"
HANDSHAKE = "2025-11-25"
FIRST_KEY = 2000  # bodies are padded to FIRST_KEY + n bytes: more than any unpadded call body
SSE_TYPE = "text/event-stream"


@dataclass
class Call:
    """One request the load made, and what came back."""

    era: str
    tool: str  # "" for the handshake
    key: int | None  # the body length (= the row's request_bytes) of a tools/call; None for the handshake
    started: float  # time.monotonic()
    ended: float = 0.0
    status: int | None = None  # None: no HTTP response (connection refused or reset, timeout)
    message: dict[str, Any] | None = None  # the JSON-RPC answer to this request, if one came
    error: str = ""

    @property
    def answered(self) -> bool:
        """The client got the JSON-RPC answer (a result, a tool error or a JSON-RPC error)."""
        return self.message is not None

    @property
    def tool_call_answered(self) -> bool:
        return self.key is not None and self.answered

    @property
    def result(self) -> dict[str, Any] | None:
        return self.message.get("result") if self.message is not None else None


def jsonrpc_answer(response: httpx2.Response, request_id: object) -> dict[str, Any] | None:
    """The JSON-RPC response to `request_id` in a JSON or SSE body, else None."""
    if response.headers.get("content-type", "").startswith(SSE_TYPE):
        messages = sse_messages(response.text)
    else:
        try:
            messages = [response.json()]
        except ValueError:
            return None
    for message in messages:
        if isinstance(message, dict) and message.get("id") == request_id and message.keys() & {"result", "error"}:
            return message
    return None


def padded(message: dict[str, Any], length: int) -> bytes:
    """`message` (a tools/call with a `text` argument) as exactly `length` bytes of JSON."""
    message["params"]["arguments"]["text"] = ""
    base = len(json.dumps(message).encode())
    assert base <= length, f"an unpadded body of {base} bytes is longer than its key {length}"
    message["params"]["arguments"]["text"] = "x" * (length - base)
    body = json.dumps(message).encode()
    assert len(body) == length
    return body


def call_message(era: str, tool: str, request_id: int, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": tool, "arguments": arguments or {}}
    if era == STATELESS:
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": STATELESS,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def call_once(url: str, secret: str, tool: str, arguments: dict[str, Any]) -> httpx2.Response:
    """One 2026-07-28 tools/call, outside any load (its id is 1)."""
    headers = Load(url, secret).headers(STATELESS, **{"Mcp-Method": "tools/call", "Mcp-Name": tool})
    body = json.dumps(call_message(STATELESS, tool, 1, arguments)).encode()
    return httpx2.post(url + "/mcp", content=body, headers=headers, timeout=30)


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": HANDSHAKE, "capabilities": {}, "clientInfo": {"name": "faults", "version": "1"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


@dataclass
class Load:
    """`stateless` + `handshake` client threads calling `tools` (round robin) until stopped.

    Each client waits `pause` seconds between calls (a bounded load, not a flood); `max_seconds`
    bounds the whole run even if the block that started it hangs.
    """

    url: str
    token: str
    tools: tuple[str, ...] = ("fixture__echo", "web__echo")
    stateless: int = 2
    handshake: int = 2
    pause: float = 0.02
    max_seconds: float = 120.0
    max_calls: int | None = None  # a burst: stop after this many tool calls
    first_key: int = FIRST_KEY  # two loads of one test take keys of their own
    timeout: float = 30.0
    calls: list[Call] = field(default_factory=list)
    _keys: Iterator[int] = field(init=False)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._keys = itertools.count(self.first_key)

    def headers(self, era: str, **extra: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            "Accept": f"application/json, {SSE_TYPE}",
            "MCP-Protocol-Version": era,
            **extra,
        }

    def start(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        eras = [STATELESS] * self.stateless + [HANDSHAKE] * self.handshake
        for index, era in enumerate(eras):
            thread = threading.Thread(target=self._client, args=(era, index, deadline), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> list[Call]:
        self._stop.set()
        return self.wait()

    def wait(self) -> list[Call]:
        """The calls, once every client is done (a burst ends by itself)."""
        for thread in self._threads:
            thread.join(timeout=self.max_seconds + self.timeout)
        return self.calls

    def _client(self, era: str, index: int, deadline: float) -> None:
        tools = itertools.cycle(self.tools[index % len(self.tools) :] + self.tools[: index % len(self.tools)])
        session: str | None = None
        with httpx2.Client(timeout=httpx2.Timeout(self.timeout)) as http:
            while not self._stop.is_set() and time.monotonic() < deadline:
                if era == HANDSHAKE and session is None:
                    session = self.initialize(http)
                    if session is None:
                        self._stop.wait(0.2)
                        continue
                key = next(self._keys)  # itertools.count: atomic under the GIL
                if self.max_calls is not None and key >= self.first_key + self.max_calls:
                    return
                call = self.call(http, era, next(tools), key, session)
                if call.status == 404 and session is not None:
                    session = None  # the session is gone (a restarted hub): start a new one
                self._stop.wait(self.pause)

    def initialize(self, http: httpx2.Client) -> str | None:
        """A handshake-era session (initialize, then notifications/initialized): its Mcp-Session-Id."""
        call = Call(HANDSHAKE, "", None, time.monotonic())
        self.calls.append(call)
        response = self._send(http, call, json.dumps(INITIALIZE).encode(), self.headers(HANDSHAKE))
        if response is None or call.message is None or "mcp-session-id" not in response.headers:
            return None
        session = response.headers["mcp-session-id"]
        with contextlib.suppress(httpx2.HTTPError):
            http.post(
                self.url + "/mcp",
                content=json.dumps(INITIALIZED).encode(),
                headers=self.headers(HANDSHAKE, **{"Mcp-Session-Id": session}),
            )
        return session

    def call(self, http: httpx2.Client, era: str, tool: str, key: int, session: str | None = None) -> Call:
        """One tools/call, its body `key` bytes long; recorded in `calls`."""
        call = Call(era, tool, key, time.monotonic())
        self.calls.append(call)
        extra = {"Mcp-Method": "tools/call", "Mcp-Name": tool} if era == STATELESS else {}
        if session is not None:
            extra["Mcp-Session-Id"] = session
        self._send(http, call, padded(call_message(era, tool, key), key), self.headers(era, **extra))
        return call

    def _send(self, http: httpx2.Client, call: Call, body: bytes, headers: dict[str, str]) -> httpx2.Response | None:
        request_id = json.loads(body)["id"]
        try:
            response = http.post(self.url + "/mcp", content=body, headers=headers)
        except httpx2.HTTPError as exc:
            call.error = f"{type(exc).__name__}: {exc}"
            return None
        finally:
            call.ended = time.monotonic()
        call.status = response.status_code
        call.message = jsonrpc_answer(response, request_id)
        if call.message is None:
            call.error = response.text[:200]
        return response


@contextlib.contextmanager
def load(url: str, token: str, **options: Any) -> Iterator[Load]:
    """Run a Load for as long as the block runs."""
    running = Load(url, token, **options)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@dataclass(frozen=True)
class Figures:
    """What the clients saw over some span of the load."""

    calls: int
    answered: int
    tool_errors: int
    rpc_errors: int
    no_response: int
    statuses: dict[str, int]

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status.startswith("5"))

    def __str__(self) -> str:
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(self.statuses.items()))
        return (
            f"{self.calls} calls, {self.answered} answered ({self.tool_errors} tool errors, "
            f"{self.rpc_errors} JSON-RPC errors), {self.no_response} without a response; HTTP {{{statuses}}}"
        )


def figures(calls: list[Call], since: float = 0.0, until: float = float("inf")) -> Figures:
    """Figures of the tools/calls (and handshakes) that started in [since, until)."""
    span = [call for call in calls if since <= call.started < until]
    statuses = Counter("none" if call.status is None else str(call.status) for call in span)
    return Figures(
        calls=len(span),
        answered=sum(call.answered for call in span),
        tool_errors=sum(bool(call.result and call.result.get("isError")) for call in span),
        rpc_errors=sum(bool(call.message and "error" in call.message) for call in span),
        no_response=statuses["none"],
        statuses=dict(statuses),
    )


@dataclass(frozen=True)
class RowCheck:
    """The request-log rows of a load's tool calls, against what the clients saw."""

    answered: int  # tool calls whose answer the client got
    rows: int
    missing: list[int]  # keys of answered calls without a row
    duplicates: dict[int, int]  # key -> rows, where more than one
    strays: list[int]  # row keys no call was sent with
    unanswered_with_row: list[int]  # keys of calls the client got no answer to, recorded all the same

    def __str__(self) -> str:
        return (
            f"{self.answered} answered calls, {self.rows} rows: {len(self.missing)} answered calls without a row, "
            f"{len(self.duplicates)} doubled, {len(self.strays)} stray rows, "
            f"{len(self.unanswered_with_row)} rows of calls the client got no answer to"
        )


def check_rows(calls: list[Call], rows: Counter[int]) -> RowCheck:
    sent = {call.key for call in calls if call.key is not None}
    answered = {call.key for call in calls if call.key is not None and call.answered}
    return RowCheck(
        answered=len(answered),
        rows=sum(rows.values()),
        missing=sorted(answered - set(rows)),
        duplicates={key: count for key, count in rows.items() if count > 1},
        strays=sorted(set(rows) - sent),
        unanswered_with_row=sorted((set(rows) & sent) - answered),
    )
