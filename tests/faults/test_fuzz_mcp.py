"""A JSON-RPC fuzz of /mcp, both protocol eras: no input gets a 5xx, every request is answered in time,
and an answer that is JSON-RPC has the JSON-RPC shape (with the error code due, where one is due).

Cases: a hand-written list of nasty ones, then mutations of valid requests drawn from a fixed seed
(the same cases on every run; a failure names its case).
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx2
import pytest

from tests.conftest import sse_messages
from tests.faults.conftest import Backing, Hub, Token, new_token
from tests.faults.load import HANDSHAKE, INITIALIZE, SSE_TYPE, STATELESS, Load, call_message, padded

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SEED = 13
GENERATED = 300
ANSWER_WITHIN = 30.0  # seconds: a request not answered by then hangs
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND = -32700, -32600, -32601


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes | None
    headers: dict[str, str | None] = field(default_factory=dict)  # None: leave the header out
    method: str = "POST"
    path: str = "/mcp"
    error_due: int | None = None  # the JSON-RPC error code this request must get
    status_due: int | None = None  # the HTTP status this request must get
    write_first: bool = False  # send like a simple client: the whole body, and only then read

    def with_headers(self, name: str, **headers: str | None) -> Case:
        return replace(self, name=f"{self.name}, {name}", headers={**self.headers, **headers})


def dumps(value: object) -> bytes:
    return json.dumps(value).encode()


def stateless(method: str = "tools/call", tool: str | None = "fixture__echo", **params: Any) -> Case:
    """A valid 2026-07-28 request (tools/call of echo by default) with its routing headers."""
    if method == "tools/call":
        message = call_message(STATELESS, tool or "", 1, {"text": "hi"})
    else:
        meta = {"io.modelcontextprotocol/protocolVersion": STATELESS, "io.modelcontextprotocol/clientCapabilities": {}}
        message = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {"_meta": meta}}
    message["params"].update(params)
    headers: dict[str, str | None] = {"MCP-Protocol-Version": STATELESS, "Mcp-Method": method}
    if tool is not None and method == "tools/call":
        headers["Mcp-Name"] = tool
    return Case(f"stateless {method}", dumps(message), headers)


def handshake(method: str = "tools/call", session: str = "", **params: Any) -> Case:
    """A valid handshake-era request in `session` (initialize: none)."""
    if method == "initialize":
        message: dict[str, Any] = dict(INITIALIZE)
    elif method == "tools/call":
        message = call_message(HANDSHAKE, "fixture__echo", 1, {"text": "hi"})
    else:
        message = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {}}
    message["params"] = {**message["params"], **params}
    headers: dict[str, str | None] = {"MCP-Protocol-Version": HANDSHAKE}
    if session:
        headers["Mcp-Session-Id"] = session
    return Case(f"handshake {method}", dumps(message), headers)


def nasty_cases(session: str, other_token: str) -> list[Case]:
    """Hand-written: malformed JSON, wrong types, batches, wrong headers, unknown methods, odd HTTP methods.

    `other_token` is a valid token that did not open `session`: the session is not its to use (404).
    """
    call = stateless()
    old = handshake(session=session)
    cases: list[Case] = []
    malformed = {
        "empty": b"",
        "open brace": b"{",
        "cut": call.body[: len(call.body) // 2] if call.body else b"",
        "trailing garbage": (call.body or b"") + b"}}",
        "invalid UTF-8": b'{"jsonrpc":"2.0","id":1,"method":"\xff\xfe"}',
        "50 000 nested [": b"[" * 50_000,
        "50 000 nested {": b'{"a":' * 50_000,
    }
    for label, body in malformed.items():
        cases.append(replace(call, name=f"stateless: {label}", body=body, error_due=PARSE_ERROR))
        cases.append(replace(old, name=f"handshake: {label}", body=body, error_due=PARSE_ERROR))
    for label, body in {
        "null": b"null",
        "number": b"1",
        "string": b'"tools/call"',
        "empty object": b"{}",
        "empty batch": b"[]",
        "batch of numbers": b"[1, 2, 3]",
        "batch of two calls": b"[" + (call.body or b"") + b"," + (call.body or b"") + b"]",
        "batch of 1000 pings": dumps([{"jsonrpc": "2.0", "id": i, "method": "ping"} for i in range(1000)]),
        "a response": b'{"jsonrpc":"2.0","id":1,"result":{}}',
        "an error response": b'{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}',
        "jsonrpc 1.0": (call.body or b"").replace(b'"2.0"', b'"1.0"'),
        "no jsonrpc": (call.body or b"").replace(b'"jsonrpc": "2.0", ', b""),
        "NUL in a string": dumps({"jsonrpc": "2.0", "id": "a\x00b", "method": "ping"}),
        "NaN id": b'{"jsonrpc":"2.0","id":NaN,"method":"ping"}',  # not JSON, though Python's parser takes it
        "lone surrogate id": b'{"jsonrpc":"2.0","id":"\\ud800","method":"ping"}',
    }.items():
        cases.append(replace(call, name=f"stateless: {label}", body=body))
        cases.append(replace(old, name=f"handshake: {label}", body=body))
    message = json.loads(call.body or b"")
    for label, (key, value) in {
        "huge id": ("id", 10**400),
        "float id": ("id", 1.5),
        "bool id": ("id", True),
        "object id": ("id", {"a": 1}),
        "list id": ("id", [1]),
        "null id": ("id", None),
        "long string id": ("id", "i" * 100_000),
        "method a number": ("method", 42),
        "method empty": ("method", ""),
        "method unknown": ("method", "tools/explode"),
        "method 100 000 chars": ("method", "m" * 100_000),
        "params a string": ("params", "x"),
        "params a list": ("params", [1, 2]),
        "params null": ("params", None),
    }.items():
        body = json.dumps({**message, key: value}).encode()
        cases.append(replace(call, name=f"stateless: {label}", body=body))
        cases.append(replace(old, name=f"handshake: {label}", body=body))
    for label, params in {
        "name a number": {"name": 42},
        "name empty": {"name": ""},
        "name unknown": {"name": "nobody__nothing"},
        "arguments a list": {"arguments": [1]},
        "arguments a string": {"arguments": "x"},
        "_meta a string": {"_meta": "x"},
        "protocol version a number": {"_meta": {"io.modelcontextprotocol/protocolVersion": 20260728}},
        "unknown protocol version": {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2099-01-01",
                "io.modelcontextprotocol/clientCapabilities": {},
            }
        },
    }.items():
        body = json.dumps({**message, "params": {**message["params"], **params}}).encode()
        cases.append(replace(call, name=f"stateless: {label}", body=body))
    over_limit = padded(call_message(STATELESS, "fixture__echo", 1), 5 * 1024 * 1024)  # the default limit: 4 MiB
    for era, case in (("stateless", call), ("handshake", old)):
        name = f"{era}: a body over the limit, written whole before reading"
        cases.append(replace(case, name=name, body=over_limit, status_due=413, write_first=True))
    cases.append(replace(stateless("tools/explode"), error_due=METHOD_NOT_FOUND))
    cases.append(replace(handshake("tools/explode", session=session), error_due=METHOD_NOT_FOUND))
    for label, headers in {
        "no Accept": {"Accept": None},
        "Accept text/html": {"Accept": "text/html"},
        "Accept JSON only": {"Accept": "application/json"},
        "Accept SSE only": {"Accept": SSE_TYPE},
        "no Content-Type": {"Content-Type": None},
        "Content-Type text/plain": {"Content-Type": "text/plain"},
        "Content-Type UTF-16": {"Content-Type": "application/json; charset=utf-16"},
        "no MCP-Protocol-Version": {"MCP-Protocol-Version": None},
        "MCP-Protocol-Version 2099-01-01": {"MCP-Protocol-Version": "2099-01-01"},
        "MCP-Protocol-Version garbage": {"MCP-Protocol-Version": "garbage"},
        "MCP-Protocol-Version of the other era": {"MCP-Protocol-Version": HANDSHAKE},
        "Mcp-Method mismatch": {"Mcp-Method": "tools/list"},
        "Mcp-Method unknown": {"Mcp-Method": "tools/explode"},
        "no Mcp-Method": {"Mcp-Method": None},
        "Mcp-Name mismatch": {"Mcp-Name": "web__echo"},
        "no Mcp-Name": {"Mcp-Name": None},
        "unknown Mcp-Session-Id": {"Mcp-Session-Id": "0" * 32},
        "Mcp-Session-Id garbage": {"Mcp-Session-Id": "../../etc/passwd"},
        "Mcp-Session-Id 8 KB": {"Mcp-Session-Id": "s" * 8192},
        "Mcp-Param header garbage": {"Mcp-Param-Text": "=?base64?@@@"},
        "foreign Host": {"Host": "evil.example"},
        "foreign Origin": {"Origin": "http://evil.example"},
        "no Authorization": {"Authorization": None},
        "Authorization garbage": {"Authorization": "Bearer \x7f\x01"},
    }.items():
        cases.append(call.with_headers(label, **headers))
        cases.append(old.with_headers(label, **headers))
    cases.append(
        handshake("initialize").with_headers("MCP-Protocol-Version 2026-07-28", **{"MCP-Protocol-Version": STATELESS})
    )
    cases.append(handshake("tools/call").with_headers("no session"))
    cases.append(handshake("tools/call", session="f" * 32).with_headers("unknown session"))
    foreign = {"Authorization": f"Bearer {other_token}", "Mcp-Session-Id": session}
    for method, body in (("POST", old.body), ("GET", None), ("DELETE", None)):
        name = f"{method} in another token's session"
        cases.append(
            replace(old, name=name, method=method, body=body, headers={**old.headers, **foreign}, status_due=404)
        )
    for method in ("GET", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"):
        for label, headers in {
            "no session": {},
            "unknown session": {"Mcp-Session-Id": "0" * 32},
            "Accept JSON": {"Accept": "application/json"},
        }.items():
            cases.append(Case(f"{method} {label}", None, {"MCP-Protocol-Version": HANDSHAKE, **headers}, method=method))
    for path in (
        "/mcp/fixture",
        "/mcp/fixture/",
        "/mcp/nobody/",
        "/mcp/%00/",
        "/mcp//",
        "/mcp/a/b/",
        "/mcp/" + "x" * 5000,
    ):
        cases.append(replace(call, name=f"stateless at {path[:40]}", path=path))
        cases.append(replace(old, name=f"handshake at {path[:40]}", path=path))
    return cases


# --- generated cases: a valid request, then 1-3 mutations ------------------------------------------

ODD_VALUES: list[object] = [
    None,
    True,
    0,
    -1,
    2**63,
    10**30,
    1.5,
    -0.0,
    "",
    "x" * 1000,
    "\x00",
    "🙂",
    [],
    [None],
    {},
    {"a": None},
]
MUTATIONS: list[str] = ["value", "drop key", "add key", "drop header", "odd header", "batch", "cut", "flip byte"]


def _mutate_json(value: Any, rng: random.Random, kind: str) -> Any:
    """Change one place of a JSON value (a random path): set it to an odd value, drop it, add a key."""
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(sorted(value))
        if kind == "drop key" and rng.random() < 0.5:
            return {k: v for k, v in value.items() if k != key}
        if kind == "add key" and rng.random() < 0.5:
            return {**value, rng.choice(["extra", "_meta", "id", "params", "cursor"]): rng.choice(ODD_VALUES)}
        return {**value, key: _mutate_json(value[key], rng, kind)}
    if isinstance(value, list) and value and rng.random() < 0.7:
        index = rng.randrange(len(value))
        return [*value[:index], _mutate_json(value[index], rng, kind), *value[index + 1 :]]
    return rng.choice(ODD_VALUES)


def generated_cases(session: str, count: int = GENERATED, seed: int = SEED) -> list[Case]:
    rng = random.Random(seed)
    bases: list[Callable[[], Case]] = [
        stateless,
        lambda: stateless("tools/list", None),
        lambda: stateless("resources/list", None),
        lambda: stateless("prompts/get", None, name="nothing"),
        lambda: stateless("ping", None),
        lambda: handshake(session=session),
        lambda: handshake("tools/list", session=session),
        lambda: handshake("initialize"),
        lambda: handshake("ping", session=session),
    ]
    header_names = ["Accept", "Content-Type", "MCP-Protocol-Version", "Mcp-Session-Id", "Mcp-Method", "Mcp-Name"]
    cases = []
    for number in range(count):
        case = rng.choice(bases)()
        steps = []
        for _ in range(rng.randint(1, 3)):
            kind = rng.choice(MUTATIONS)
            steps.append(kind)
            body = case.body or b"{}"
            if kind in ("value", "drop key", "add key"):
                with contextlib.suppress(ValueError):  # an earlier step broke the JSON: then this one does nothing
                    case = replace(case, body=dumps(_mutate_json(json.loads(body), rng, kind)))
            elif kind == "drop header":
                case = replace(case, headers={**case.headers, rng.choice(header_names): None})
            elif kind == "odd header":
                odd = rng.choice(["", "x", "2026-07-28", "2025-11-25", "tools/call", "a" * 300, "application/json"])
                case = replace(case, headers={**case.headers, rng.choice(header_names): odd})
            elif kind == "batch":
                case = replace(case, body=b"[" + b",".join([body] * rng.randint(1, 5)) + b"]")
            elif kind == "cut":
                case = replace(case, body=body[: rng.randrange(len(body) + 1)])
            elif kind == "flip byte" and body:
                index = rng.randrange(len(body))
                case = replace(case, body=body[:index] + bytes([rng.randrange(256)]) + body[index + 1 :])
        cases.append(replace(case, name=f"#{number} {case.name}: {', '.join(steps)}"))
    return cases


# --- sending, checking ----------------------------------------------------------------------------


@dataclass
class Outcome:
    case: Case
    status: int | None
    seconds: float
    content_type: str = ""
    body: bytes = b""
    error: str = ""


def send(hub: Hub, token: Token, case: Case) -> Outcome:
    """Send one case; read its answer (a stream that stays open: until its headers) within ANSWER_WITHIN."""
    base: dict[str, str | None] = {
        "Authorization": f"Bearer {token.secret}",
        "Content-Type": "application/json",
        "Accept": f"application/json, {SSE_TYPE}",
    }
    headers = {k: v for k, v in {**base, **case.headers}.items() if v is not None}
    started = time.monotonic()
    if case.write_first:
        return send_then_read(hub, case, headers)
    try:
        with httpx2.stream(
            case.method, hub.url + case.path, content=case.body, headers=headers, timeout=ANSWER_WITHIN
        ) as response:
            content_type = response.headers.get("content-type", "")
            body = b""
            if not (case.method == "GET" and content_type.startswith(SSE_TYPE)):  # a GET stream stays open
                for chunk in response.iter_bytes():
                    body += chunk
                    if time.monotonic() - started > ANSWER_WITHIN:
                        return Outcome(case, response.status_code, time.monotonic() - started, error="no end")
            return Outcome(case, response.status_code, time.monotonic() - started, content_type, body)
    except (httpx2.HTTPError, UnicodeEncodeError) as exc:
        return Outcome(case, None, time.monotonic() - started, error=f"{type(exc).__name__}: {exc}")


def send_then_read(hub: Hub, case: Case, headers: dict[str, str]) -> Outcome:
    """Write the request whole over a plain socket, then read the answer (HTTP/1.1, one request)."""
    started = time.monotonic()
    head = f"{case.method} {case.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head += f"Content-Length: {len(case.body or b'')}\r\n\r\n"
    answer = b""
    try:
        with socket.create_connection(("127.0.0.1", hub.port), timeout=ANSWER_WITHIN) as sock:
            sock.sendall(head.encode() + (case.body or b""))
            while chunk := sock.recv(65536):
                answer += chunk
    except OSError as exc:
        return Outcome(case, None, time.monotonic() - started, error=f"{type(exc).__name__}: {exc}")
    status_line, _, rest = answer.partition(b"\r\n")
    response_head, _, body = rest.partition(b"\r\n\r\n")
    content_type = next(
        (
            line.split(b":", 1)[1].strip().decode()
            for line in response_head.split(b"\r\n")
            if line.lower().startswith(b"content-type:")
        ),
        "",
    )
    status = int(status_line.split()[1]) if status_line.startswith(b"HTTP/") else None
    return Outcome(case, status, time.monotonic() - started, content_type, body, "" if status else "no status line")


def jsonrpc_messages(outcome: Outcome) -> list[Any]:
    """The JSON-RPC messages of an answer (JSON or SSE), or [] if it carries none."""
    if outcome.content_type.startswith(SSE_TYPE):
        return sse_messages(outcome.body.decode(errors="replace"))
    try:
        value = json.loads(outcome.body)
    except ValueError:
        return []
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, dict) and "jsonrpc" in v]


def shape_problem(message: Any) -> str:
    """Why `message` is not a JSON-RPC response or notification ("" if it is one)."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return "not a JSON-RPC 2.0 object"
    if "method" in message:
        return ""  # a notification or a server request on a stream
    if ("result" in message) == ("error" in message):
        return "neither or both of result and error"
    if "id" not in message:
        return "no id"
    error = message.get("error")
    if error is not None and not (
        isinstance(error, dict) and isinstance(error.get("code"), int) and isinstance(error.get("message"), str)
    ):
        return "an error without an integer code and a message"
    return ""


def problems(outcome: Outcome) -> list[str]:
    found = []
    if outcome.status is None:
        if "UnicodeEncodeError" not in outcome.error and "LocalProtocolError" not in outcome.error:
            found.append(f"no answer: {outcome.error}")
    elif outcome.status >= 500:
        found.append(f"HTTP {outcome.status}")
    elif outcome.status >= 400 and not outcome.body.strip() and outcome.case.method != "HEAD":  # HEAD: no body
        found.append(f"HTTP {outcome.status} without a reason")
    if outcome.error == "no end":
        found.append(f"the answer did not end within {ANSWER_WITHIN} s")
    messages = jsonrpc_messages(outcome)
    found += [f"{problem}: {m!r:.200}" for m in messages if (problem := shape_problem(m))]
    if outcome.case.status_due is not None and outcome.status != outcome.case.status_due:
        found.append(f"HTTP {outcome.status}, not {outcome.case.status_due}")
    due = outcome.case.error_due
    if due is not None and not any(
        isinstance(m.get("error"), dict) and m["error"].get("code") == due for m in messages
    ):
        found.append(f"no JSON-RPC error {due}")
    return found


@pytest.fixture
def session(hub: Hub, token: Token) -> str:
    with httpx2.Client(timeout=30) as http:
        session = Load(hub.url, token.secret).initialize(http)
    assert session is not None
    return session


def test_fuzzing_mcp_gets_no_5xx_no_hang_and_jsonrpc_errors(
    backing: Backing, hub: Hub, token: Token, session: str
) -> None:
    other = new_token(backing, "another client")
    cases = nasty_cases(session, other.secret) + generated_cases(session)
    outcomes = [send(hub, token, case) for case in cases]

    statuses = Counter("none" if o.status is None else str(o.status) for o in outcomes)
    slowest = max(outcomes, key=lambda o: o.seconds)
    print(f"\n/mcp fuzz: {len(cases)} requests ({GENERATED} of them generated, seed {SEED})")
    print(f"  HTTP statuses: {dict(sorted(statuses.items()))}")
    print(f"  slowest answer {slowest.seconds:.2f} s ({slowest.case.name})")
    # HTTP-level refusals (token, Host, Origin, Accept, Content-Type, path) answer without JSON-RPC.
    bare = Counter(
        f"{o.status} {o.body[:40]!r}" for o in outcomes if o.status and o.status >= 400 and not jsonrpc_messages(o)
    )
    print(f"  refused without a JSON-RPC body: {dict(bare.most_common())}")
    failures = [(o, found) for o in outcomes if (found := problems(o))]
    for outcome, found in failures[:40]:
        print(f"  {outcome.case.name}: {'; '.join(found)} (HTTP {outcome.status}, {outcome.body[:120]!r})")
    assert not failures, f"{len(failures)} of {len(cases)} requests answered wrongly (listed above)"
    # The hub still serves after all that.
    assert send(hub, token, stateless()).status == 200
