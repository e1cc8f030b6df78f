"""Server-to-client requests relayed from an upstream to the downstream client that should answer them.

An upstream server may ask its client (the hub) for `sampling/createMessage`,
`elicitation/create` or `roots/list`. The hub cannot answer those itself: it
relays each to a downstream client. Which one: the gateway names the downstream
requester (its session, request id, capabilities) in a context variable around
each upstream request (`requesting`); each upstream connection keeps the
requesters it has in flight (`ClientRelay.in_flight`).

- A 2026-07-28 upstream embeds its questions in the result; the SDK client's
  input_required driver calls our callbacks in the caller's own task, so the
  context variable names the requester exactly.
- A handshake-era upstream sends a request on the connection, and the callback
  runs in the client's receive task: it goes to the in-flight caller on that
  connection whose client declared the capability (the oldest if several, and
  only while every call in flight is of one identity), else, with no call in
  flight, to a connected downstream session allowed on the server that declared
  it (`set_directory`), else it is answered with a JSON-RPC error saying why.

Every relayed request is bounded by the upstream's call timeout; a cancelled
upstream request cancels the relayed one. This module imports no Django.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
from mcp.client.session import ClientRequestContext
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from pydantic import BaseModel, ValidationError

from servers.upstream.log_routes import ROUTE, SERVER_META_KEY, LogRoute, logging_to

logger = logging.getLogger(__name__)

MAX_URL_ELICITATIONS = 1000  # remembered for their completion notice; the oldest are forgotten

# What the hub declares upstream: everything it can relay (the SDK declares elicitation form+url
# and roots.listChanged for the callbacks themselves).
SAMPLING_CAPABILITY = types.SamplingCapability(
    tools=types.SamplingToolsCapability(), context=types.SamplingContextCapability()
)


@dataclass(eq=False)
class Requester:
    """A downstream client that can be asked: its session and the request of its that is being served.

    `request_id` None means the session's standalone channel (the GET stream), for requests that
    belong to no call. `server` is the slug of the hub server the request went to; `label` says
    whether to name it in relayed requests (on /mcp, which aggregates several servers). `session`
    None: a client asked some other way (a subclass's `send`: servers.gateway.held_calls).
    """

    session: ServerSession | None
    request_id: types.RequestId | None = None
    server: str = ""
    label: bool = False
    log: LogRoute | None = None  # where this request's log messages go (None: nowhere)
    owner: int | None = None  # the identity (token id) behind it: a request is never relayed to another's client
    # Cuts the client's SSE stream of this request, which it then resumes (SEP-1699): done when the upstream cut ours.
    close_stream: Callable[[], Awaitable[None]] | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def answering(self) -> bool:
        """It has a question of the server's open (a subclass that knows says so): a call blocked on an
        answer is the least likely to ask another, so another in-flight caller of its identity is asked first."""
        return False

    @property
    def capabilities(self) -> types.ClientCapabilities | None:
        return self.session.client_capabilities if self.session is not None else None

    def can_answer(self, method: str, params: BaseModel | None) -> bool:
        """Whether this client declared what `method` (with these params) needs, and can be sent requests."""
        caps = self.capabilities
        if caps is None:
            return False
        if self.request_id is not None and self.session is not None and not self.session.can_send_request:
            return False  # a 2026-07-28 request has no back-channel (input_required is the way there)
        if method == "sampling/createMessage":
            if caps.sampling is None:
                return False
            if isinstance(params, types.CreateMessageRequestParams):
                if (params.tools or params.tool_choice) and caps.sampling.tools is None:
                    return False
                if params.include_context not in (None, "none") and caps.sampling.context is None:
                    return False
            return True
        if method == "elicitation/create":
            if caps.elicitation is None:
                return False
            if isinstance(params, types.ElicitRequestURLParams):
                return caps.elicitation.url is not None
            # An empty elicitation capability means form mode (the 2025-06-18 shape).
            return caps.elicitation.form is not None or caps.elicitation.url is None
        if method == "roots/list":
            return caps.roots is not None
        return False

    async def send(self, request: types.ServerRequest, result_type: type[BaseModel], timeout: float) -> BaseModel:
        """Send on the originating request's stream (or the session's channel), bounded by `timeout`."""
        if self.session is None:
            raise RuntimeError("no session to send on")
        metadata = ServerMessageMetadata(related_request_id=self.request_id) if self.request_id is not None else None
        return await self.session.send_request(request, result_type, timeout, metadata=metadata)


CURRENT: ContextVar[Requester | None] = ContextVar("mcphub_requester", default=None)

# The connected downstream sessions allowed on an upstream (by slug) that could answer a request
# belonging to no call (set by the gateway).
_directory: Callable[[str], Iterable[Requester]] = lambda slug: ()  # noqa: E731


def set_directory(directory: Callable[[str], Iterable[Requester]]) -> None:
    """Where to look for a client when no call is in flight: the gateway's sessions whose token may use the server."""
    global _directory
    _directory = directory


@contextmanager
def requesting(requester: Requester | None) -> Iterator[None]:
    """Name the downstream requester (and its log route) for the upstream requests made inside."""
    token = CURRENT.set(requester)
    try:
        with logging_to(requester.log if requester is not None else None):
            yield
    finally:
        CURRENT.reset(token)


class ClientRelay:
    """One upstream connection's side: its in-flight requesters and the SDK client's callbacks."""

    def __init__(self, slug: str, timeout: Callable[[], float]) -> None:
        self.slug = slug
        self._timeout = timeout
        self._in_flight: list[Requester] = []  # oldest first
        self._unattributed = 0  # clients' requests in flight that name no requester (hot-path calls)
        self._log_routes: list[LogRoute | None] = []  # those of the clients' requests in flight (None: no route)
        # URL-mode elicitations relayed, by elicitation id: who gets `notifications/elicitation/complete`.
        self._url_elicitations: dict[str, Requester] = {}

    @staticmethod
    def detach() -> None:
        """In the connection's own task: its tasks serve every caller, so they inherit none
        (a task copies its creator's context, and the first caller may have started it)."""
        CURRENT.set(None)

    def enter(self, internal: bool = False) -> Requester | None:
        """At the start of one upstream request: its requester (if any) may be asked while it runs.

        `internal`: the hub's own request (listing, ping), which no client's request can belong to.
        """
        requester = CURRENT.get()
        if requester is not None:
            self._in_flight.append(requester)
        elif not internal:
            self._unattributed += 1
        if not internal:
            self._log_routes.append(ROUTE.get())
        return requester

    def leave(self, requester: Requester | None, internal: bool = False) -> None:
        """At the end of that request."""
        if requester is not None:
            self._in_flight.remove(requester)
        elif not internal:
            self._unattributed -= 1
        if not internal:
            self._log_routes.remove(ROUTE.get())

    def log_routes_in_flight(self) -> list[LogRoute]:
        """The log routes of the clients' requests in flight."""
        return [route for route in self._log_routes if route is not None]

    async def log(self, params: types.LoggingMessageNotificationParams) -> None:
        """An upstream's `notifications/message` on the shared connection, which does not say which request
        it belongs to: to the client request in flight only while it is the only one, else dropped."""
        route = self._log_routes[0] if len(self._log_routes) == 1 else None
        if route is None:
            logger.debug("upstream %s: log message not attributable to one client request dropped", self.slug)
            return
        await route.relay(self.slug, params)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for the SDK `Client`: the callbacks, and so the declared capabilities."""
        return {
            "sampling_callback": self.sampling,
            "sampling_capabilities": SAMPLING_CAPABILITY,
            "elicitation_callback": self.elicitation,
            "list_roots_callback": self.list_roots,
            "logging_callback": self.log,
        }

    def pick(self, method: str, params: BaseModel | None) -> Requester | str:
        """The client to ask: the caller itself (exact), an in-flight caller, a connected session; else why none.

        A handshake-era upstream does not say which call a request belongs to. Its request may carry
        what one client sent (arguments, documents): so it goes to an in-flight caller only when every
        call in flight is of one identity, and to a connected session only when no call is in flight
        and that session's token may use the server. Never to one identity on another's behalf.
        """
        current = CURRENT.get()
        if current is not None and current in self._in_flight:
            return current if current.can_answer(method, params) else f"the calling client cannot answer {method}"
        if self._in_flight or self._unattributed:
            if self._unattributed or len({requester.owner for requester in self._in_flight}) > 1:
                return f"{method} cannot be attributed to one client: calls of several are in flight"
            candidates: Iterable[Requester] = self._in_flight
        else:
            candidates = _directory(self.slug)
        for requester in sorted(candidates, key=lambda requester: requester.answering):
            if requester.can_answer(method, params):
                return requester
        return f"no connected client can answer {method}"

    async def sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
        result_type: type[BaseModel] = (
            types.CreateMessageResultWithTools if params.tools or params.tool_choice else types.CreateMessageResult
        )
        result = await self._relay("sampling/createMessage", params, result_type)
        assert isinstance(result, (types.CreateMessageResult, types.CreateMessageResultWithTools, types.ErrorData))
        return result

    async def elicitation(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        result = await self._relay("elicitation/create", params, types.ElicitResult)
        assert isinstance(result, (types.ElicitResult, types.ErrorData))
        return result

    async def elicitation_complete(self, elicitation_id: str) -> None:
        """The upstream says a URL-mode elicitation is done: tell the client that was sent it (its session)."""
        requester = self._url_elicitations.pop(elicitation_id, None)
        if requester is None or requester.session is None:
            return
        try:
            with anyio.fail_after(5):
                await requester.session.send_elicit_complete(elicitation_id)
        except Exception as exc:  # the client went away: nothing to retry for it
            logger.debug("upstream %s: elicitation complete not delivered: %s", self.slug, exc)

    async def list_roots(self, context: ClientRequestContext) -> types.ListRootsResult | types.ErrorData:
        result = await self._relay("roots/list", None, types.ListRootsResult)
        assert isinstance(result, (types.ListRootsResult, types.ErrorData))
        return result

    async def _relay(self, method: str, params: BaseModel | None, result_type: type[BaseModel]) -> BaseModel:
        requester = self.pick(method, params)
        if isinstance(requester, str):
            return types.ErrorData(code=types.INVALID_REQUEST, message=f"{self.slug}: {requester}")
        request = self._request(method, params, requester)
        if isinstance(params, types.ElicitRequestURLParams) and params.elicitation_id:
            if len(self._url_elicitations) >= MAX_URL_ELICITATIONS:
                self._url_elicitations.pop(next(iter(self._url_elicitations)))
            self._url_elicitations[params.elicitation_id] = requester
        timeout = self._timeout()
        try:
            with anyio.fail_after(timeout + 1):
                return await requester.send(request, result_type, timeout)
        except MCPError as exc:
            return exc.error
        except TimeoutError:
            return types.ErrorData(
                code=types.REQUEST_TIMEOUT, message=f"{method}: the client did not answer within {timeout:g} s"
            )
        except ValidationError as exc:
            message = f"{method}: invalid answer from the client: {exc}"
            return types.ErrorData(code=types.INTERNAL_ERROR, message=message)
        except Exception as exc:  # the client went away, or its session cannot send: an error upstream, not a crash
            logger.info("upstream %s: relaying %s failed: %s", self.slug, method, exc)
            return types.ErrorData(code=types.INTERNAL_ERROR, message=f"{method} could not be relayed: {exc}")

    def _request(self, method: str, params: BaseModel | None, requester: Requester) -> types.ServerRequest:
        if params is None:
            return types.ListRootsRequest()
        data = params.model_dump(by_alias=True, mode="json", exclude_none=True)
        if requester.label:
            # On /mcp the client sees many servers: say which one asks, in `_meta` and in the message.
            data["_meta"] = {**data.get("_meta", {}), SERVER_META_KEY: requester.server}
            if method == "elicitation/create" and "message" in data:
                data["message"] = f"[{requester.server}] {data['message']}"
        if method == "sampling/createMessage":
            return types.CreateMessageRequest(params=types.CreateMessageRequestParams.model_validate(data))
        if data.get("mode") == "url":
            return types.ElicitRequest(params=types.ElicitRequestURLParams.model_validate(data))
        return types.ElicitRequest(params=types.ElicitRequestFormParams.model_validate(data))
