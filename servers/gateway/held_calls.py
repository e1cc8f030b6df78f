"""A handshake-era server's questions during a 2026-07-28 client's request, asked as `input_required` rounds.

A handshake-era server asks its client (`sampling/createMessage`, `elicitation/create`,
`roots/list`) with a request on the connection, in the middle of a call, and waits for the
answer. A 2026-07-28 client has no back-channel: it is asked by an `input_required` result
and answers by retrying its request. So the hub *holds* the upstream call (a task of this
web process) and answers the client's request with the questions asked so far, keyed
`q1`, `q2`, ...; the retry's `inputResponses` answer them and the call goes on, until the
server asks again (another round) or ends (its result answers the retry).

The round's `requestState` names the held call: this web process, the call, the round. It
is sealed like any server's state (servers.gateway.request_state: bound to the token, the
endpoint and the request, tamper-evident), so a client can neither read nor forge one.

What the hub keeps: the held call, in the web process that asked. A retry that reaches
another web process gets -32602 saying so: multi-round calls to handshake-era servers need
the client's requests routed to one web process (or a single web process). Bounds: a held
call ends with its server's call timeout (counted from the call's start, over all its
rounds): its unanswered questions get an error, the server's call ends, a later retry gets
-32602. A token has at most `MCPHUB_MAX_HELD_CALLS` calls with questions out; beyond that the
server's question gets an error saying so. A client that goes away while its request waits
cancels the call, as for any call.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel

from servers.conf import servers_conf
from servers.gateway.rounds import INPUT_REQUIRED, declared_capabilities
from servers.gateway.scope import RequestScope
from servers.upstream.log_routes import ROUTE, LogRoute, logging_to
from servers.upstream.requester import Requester, requesting

logger = logging.getLogger(__name__)

STATE_PREFIX = "mcphub-held:"  # the plaintext of a held call's state, inside the seal
PROCESS = secrets.token_hex(8)  # this web process, as its held calls' states name it

Send = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
Spawn = Callable[..., None]


def _refuse(message: str, reason: str) -> NoReturn:
    raise MCPError(types.INVALID_PARAMS, message, {"reason": reason})


@dataclass(eq=False)
class Question:
    """One request of the server's, as the client gets it in an `input_required` result."""

    request: dict[str, Any]
    answered: anyio.Event = field(default_factory=anyio.Event)
    answer: Any = None
    error: types.ErrorData | None = None


class HeldCall:
    """One upstream call whose server asked something: its open questions, rounds and outcome."""

    def __init__(self, owner: int, endpoint: str) -> None:
        self.id = secrets.token_urlsafe(16)
        self.owner = owner
        self.endpoint = endpoint
        self.rounds = 0  # `input_required` results given
        self.questions: dict[str, Question] = {}  # asked by the server, not answered yet
        self.outcome: tuple[dict[str, Any] | None, BaseException | None] | None = None
        self.attended = False  # a client's request is waiting on it
        self.scope = anyio.CancelScope()
        self._asked = 0
        self._news = anyio.Event()

    @property
    def out(self) -> bool:
        """It waits on its client: a round given or a question asked, and not over."""
        return self.outcome is None and (self.rounds > 0 or bool(self.questions))

    async def ask(self, request: dict[str, Any]) -> Any:
        """Put `request` to the client (in the next round); its answer."""
        self._asked += 1
        key = f"q{self._asked}"
        question = self.questions[key] = Question(request)
        self._news.set()
        try:
            await question.answered.wait()
        finally:
            self.questions.pop(key, None)
        if question.error is not None:
            raise MCPError.from_error_data(question.error)
        return question.answer

    def answer(self, responses: object) -> None:
        """The client's `inputResponses`: each answers the question of its key (others are ignored)."""
        if not isinstance(responses, Mapping):
            return
        for key, response in responses.items():
            question = self.questions.pop(key, None)
            if question is not None:
                question.answer = response
                question.answered.set()

    def finish(self, result: dict[str, Any] | None = None, error: BaseException | None = None) -> None:
        """The upstream call is over: questions still open get an error (the server is told the call ended)."""
        if self.outcome is not None:
            return
        self.outcome = (result, error)
        for question in self.questions.values():
            question.error = types.ErrorData(
                code=types.REQUEST_TIMEOUT, message="the call ended before the client answered"
            )
            question.answered.set()
        self._news.set()

    async def news(self) -> None:
        """Until the call is over or has a question for the client."""
        while self.outcome is None and not self.questions:
            self._news = anyio.Event()
            await self._news.wait()

    def next_round(self) -> dict[str, Any]:
        """The `input_required` result putting the open questions to the client (the state is sealed later)."""
        self.rounds += 1
        return {
            "resultType": INPUT_REQUIRED,
            "inputRequests": {key: question.request for key, question in self.questions.items()},
            "requestState": f"{STATE_PREFIX}{PROCESS}:{self.id}:{self.rounds}",
        }


class HeldCallClient(Requester):
    """The 2026-07-28 client of a held call, as the upstream layer relays to it: asked by the call's rounds."""

    def __init__(
        self, held: HeldCall, calls: HeldCalls, capabilities: types.ClientCapabilities, server: str, label: bool
    ) -> None:
        super().__init__(None, server=server, label=label, owner=held.owner)
        self.held = held
        self._calls = calls
        self._declared = capabilities

    @property
    def capabilities(self) -> types.ClientCapabilities | None:
        return self._declared  # what its request's `_meta` declared

    @property
    def answering(self) -> bool:
        return bool(self.held.questions)

    async def send(self, request: types.ServerRequest, result_type: type[BaseModel], timeout: float) -> BaseModel:
        if not self.held.out:
            limit = servers_conf().max_held_calls
            if self._calls.held_by(self.held.owner) >= limit:
                message = f"{limit} calls of this token are already waiting for its answers (MCPHUB_MAX_HELD_CALLS)"
                raise MCPError(types.INVALID_REQUEST, message)
        answer = await self.held.ask(request.model_dump(by_alias=True, mode="json", exclude_none=True))
        return result_type.model_validate(answer)


class HeldCalls:
    """This web process's held calls, by id."""

    def __init__(self) -> None:
        self._calls: dict[str, HeldCall] = {}

    def held_by(self, owner: int) -> int:
        return sum(1 for held in self._calls.values() if held.owner == owner and held.out)

    async def request(
        self,
        scope: RequestScope,
        server: str,
        params: Mapping[str, Any],
        request: dict[str, Any],
        modern: bool,
        send: Send,
        spawn: Spawn,
    ) -> dict[str, Any]:
        """A 2026-07-28 client's pass-through request (`params` as it sent them; `request` for the server, its
        state opened) sent with `send`: a held call resumed, a handshake-era server's call held, else sent."""
        state = request.get("requestState")
        if isinstance(state, str) and state.startswith(STATE_PREFIX):
            held = self._resumed(scope, state)
            held.answer(request.get("inputResponses"))
            return await self._attend(held)
        if modern:
            return await send(request)
        held = HeldCall(scope.token.id, scope.slug or "")
        capabilities = types.ClientCapabilities.model_validate(declared_capabilities(params) or {})
        client = HeldCallClient(held, self, capabilities, server, label=scope.slug is None)
        self._calls[held.id] = held
        spawn(self._run, held, client, ROUTE.get(), send, request)
        return await self._attend(held)

    def _resumed(self, scope: RequestScope, state: str) -> HeldCall:
        """The held call a (sealed, so genuine) state names, if it is still waiting for this round's answers."""
        process, _, rest = state.removeprefix(STATE_PREFIX).partition(":")
        call_id, _, round_number = rest.partition(":")
        if process != PROCESS:
            _refuse(
                "This input_required round belongs to a call held by another web process of the hub: retry it "
                "on the web process that answered it (multi-round calls to handshake-era servers need sticky "
                "routing, or a single web process)",
                "held_elsewhere",
            )
        held = self._calls.get(call_id)
        if (
            held is None
            or held.outcome is not None
            or held.attended
            or held.owner != scope.token.id
            or held.endpoint != (scope.slug or "")
            or str(held.rounds) != round_number
        ):
            _refuse(
                "This input_required round is no longer pending: its call ended (the server's call timeout "
                "counts from the first round) or the round was answered already",
                "round_not_pending",
            )
        return held

    async def _run(
        self, held: HeldCall, client: HeldCallClient, route: LogRoute | None, send: Send, request: dict[str, Any]
    ) -> None:
        """The upstream call, in the background (the gateway's task group), its log messages to the first
        request's stream (`route`; later ones are lost): its outcome kept for the client."""
        try:
            with held.scope, requesting(client), logging_to(route):
                held.finish(result=await send(request))
        except Exception as exc:  # kept for the client's request, which raises it
            held.finish(error=exc)
        finally:
            held.finish(error=MCPError(types.INTERNAL_ERROR, "the call was cancelled"))  # no-op once finished
            if not held.attended:
                self._calls.pop(held.id, None)  # no request waits: nobody will take its outcome

    async def _attend(self, held: HeldCall) -> dict[str, Any]:
        """Wait for the held call's next round or its outcome; a client gone meanwhile cancels the call."""
        held.attended = True
        try:
            await held.news()
        except anyio.get_cancelled_exc_class():
            held.scope.cancel()
            self._calls.pop(held.id, None)
            raise
        finally:
            held.attended = False
        if held.outcome is None:
            return held.next_round()
        self._calls.pop(held.id, None)
        result, error = held.outcome
        if error is not None:
            raise error
        assert result is not None
        return result
