"""The web process stopped (SIGTERM) or killed (SIGKILL): what its callers got is what the request log holds."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time

import httpx2
import pytest

from tests.conftest import wait_for
from tests.faults.conftest import Backing, Hub, Token, row_keys, settled_rows
from tests.faults.load import FIRST_KEY, HANDSHAKE, SSE_TYPE, STATELESS, Load, call_message, figures, load

pytestmark = [pytest.mark.faults, pytest.mark.slow]

STOP_BOUND = 20.0  # seconds a graceful stop may take, open connections or not (generous: a busy CI machine)
KILL_LOSS_WINDOW = 3.0  # seconds before a SIGKILL whose records may be lost (the README: about the last second)
KILL_LOSS_MAX = 1000  # ... and at most a batch (logs.writer's batch_size)
BURST = 101
BURST_TAIL = 10  # calls of the burst sent after the writer has written the others


def stop_and_restart(hub: Hub) -> float | None:
    """SIGTERM; the seconds the process took to exit (None: it did not within STOP_BOUND, then it is killed)."""
    hub.signal(signal.SIGTERM)
    seconds = hub.wait_exit(STOP_BOUND)
    hub.kill_all()  # whatever is left (a process that did not stop, children it left behind)
    hub.start()  # same port and var folder: it finds what the old process spooled
    return seconds


def test_sigterm_under_load_writes_every_answered_call(backing: Backing, hub: Hub, token: Token) -> None:
    with load(hub.url, token.secret) as running:
        time.sleep(4)
        signalled = time.monotonic()
        hub.signal(signal.SIGTERM)
        seconds = hub.wait_exit(STOP_BOUND)
        time.sleep(0.5)
    hub.kill_all()
    hub.start()

    rows = settled_rows(backing, token, running.calls)
    print(f"\nSIGTERM under load: the process exited after {seconds} s")
    print(f"  before the signal: {figures(running.calls, until=signalled)}")
    print(f"  after the signal:  {figures(running.calls, since=signalled)}")
    print(f"  rows:              {rows}")
    cut = [call for call in running.calls if call.key in set(rows.unanswered_with_row)]
    for call in cut:
        after = call.ended - signalled
        print(f"  recorded, not answered: {call.era} {call.tool}, {after:.2f} s after the signal: {call.error}")
    assert seconds is not None, f"the web process was still running {STOP_BOUND} s after SIGTERM"
    assert figures(running.calls).server_errors == 0
    assert not rows.missing, f"answered calls without a row after a graceful stop: {rows}"
    assert not cut, "calls in progress at the signal were recorded but their answers never reached the client"
    assert not rows.duplicates and not rows.strays, f"doubled or stray rows: {rows}"


def test_sigterm_right_after_a_burst_writes_every_call(backing: Backing, hub: Hub, token: Token) -> None:
    """101 calls, SIGTERM 0.1 s after the last answer; after a restart, 101 rows.

    The last calls of the burst come right after the writer emptied its queue (the first calls' rows are
    in), so that their records are still queued when the signal comes (the writer writes every second).
    """
    lead = Load(hub.url, token.secret, max_calls=BURST - BURST_TAIL, pause=0.0)
    lead.start()
    lead.wait()
    rows_in = lambda: sum(row_keys(backing, token).values()) >= BURST - BURST_TAIL  # noqa: E731
    wait_for(rows_in, timeout=30, interval=0.01, what="the first calls' rows")  # the writer's queue is empty now
    tail = Load(hub.url, token.secret, max_calls=BURST_TAIL, pause=0.0, first_key=FIRST_KEY + BURST)
    tail.start()
    calls = lead.calls + tail.wait()
    last_answer = max(call.ended for call in calls)
    time.sleep(max(0.0, last_answer + 0.1 - time.monotonic()))
    seconds = stop_and_restart(hub)

    rows = settled_rows(backing, token, calls)
    print(f"\nSIGTERM 0.1 s after a burst of {BURST}: {figures(calls)}; the process exited after {seconds} s")
    print(f"  rows: {rows}")
    assert rows.answered == BURST, f"the burst was not served: {figures(calls)}"
    assert seconds is not None, f"the web process was still running {STOP_BOUND} s after SIGTERM"
    assert not rows.missing, f"answered calls without a row after a graceful stop: {rows}"
    assert not rows.duplicates and not rows.strays, f"doubled or stray rows: {rows}"


SLOW_CALL = {"seconds": 60}
CONNECTED: dict[str, tuple[str, str, bytes | None, dict[str, str]] | None] = {
    "an idle keep-alive connection": None,
    "a handshake-era GET stream": ("GET", HANDSHAKE, None, {"Accept": SSE_TYPE}),
    "a handshake-era call in progress": (
        "POST",
        HANDSHAKE,
        json.dumps(call_message(HANDSHAKE, "web__slow", 1, SLOW_CALL)).encode(),
        {},
    ),
    "a 2026-07-28 call in progress": (
        "POST",
        STATELESS,
        json.dumps(call_message(STATELESS, "web__slow", 1, SLOW_CALL)).encode(),
        {"Mcp-Method": "tools/call", "Mcp-Name": "web__slow"},
    ),
}


@pytest.mark.parametrize("connected", CONNECTED)
def test_sigterm_stops_the_process_in_time_with_a_client_connected(hub: Hub, token: Token, connected: str) -> None:
    client = Load(hub.url, token.secret)
    idle = httpx2.Client(timeout=30)  # its connection stays open after the handshake: a keep-alive one
    session = client.initialize(idle)
    assert session is not None, f"no handshake-era session: {client.calls}"
    opened = threading.Event()

    def hold(method: str, era: str, body: bytes | None, headers: dict[str, str]) -> None:
        """Hold a response stream open until the hub ends it (a call streams keep-alive pings while it runs)."""
        if era == HANDSHAKE:
            headers = {**headers, "Mcp-Session-Id": session}
        options = {"headers": client.headers(era, **headers), "timeout": httpx2.Timeout(30, read=None)}
        with (
            contextlib.suppress(httpx2.HTTPError),
            httpx2.stream(method, hub.url + "/mcp", content=body, **options) as r,
        ):
            if r.status_code == 200:
                opened.set()
                for _ in r.iter_bytes():
                    pass

    if (request := CONNECTED[connected]) is not None:
        threading.Thread(target=hold, args=request, daemon=True).start()
        assert opened.wait(30), f"{connected}: no stream opened"

    hub.signal(signal.SIGTERM)
    seconds = hub.wait_exit(STOP_BOUND)
    idle.close()

    print(f"\nSIGTERM with {connected}: the process exited after {seconds} s")
    assert seconds is not None, f"the web process was still running {STOP_BOUND} s after SIGTERM with {connected}"


def test_sigkill_under_load_loses_at_most_the_last_second(backing: Backing, hub: Hub, token: Token) -> None:
    with load(hub.url, token.secret) as running:
        time.sleep(5)
        killed = time.monotonic()
        hub.signal(signal.SIGKILL)
        hub.wait_exit(30)
        time.sleep(0.5)
    hub.kill_all()
    hub.start()

    calls = running.calls
    old = {c.key for c in calls if c.key is not None and c.answered and c.ended < killed - KILL_LOSS_WINDOW}
    rows = settled_rows(backing, token, calls, required=old)
    lost = [call for call in calls if call.key in set(rows.missing)]
    last_second = figures([call for call in calls if killed - 1 <= call.ended < killed and call.key is not None])
    print(f"\nSIGKILL under load: {figures(calls, until=killed)} before the kill")
    print(f"  answered in the last second before the kill: {last_second.answered}")
    print(f"  rows: {rows}")
    if lost:
        print(
            f"  lost: {len(lost)}, answered {killed - max(c.ended for c in lost):.2f}-"
            f"{killed - min(c.ended for c in lost):.2f} s before the kill"
        )
    assert len(lost) <= KILL_LOSS_MAX, f"{len(lost)} records lost"
    assert all(killed - call.ended <= KILL_LOSS_WINDOW for call in lost), (
        f"records of calls answered more than {KILL_LOSS_WINDOW} s before the kill were lost"
    )
    assert not rows.duplicates and not rows.strays, f"doubled or stray rows: {rows}"
