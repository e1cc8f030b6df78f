"""/ws/status/ through the real ASGI app and the real channels-redis layer of the test settings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from mcphub.asgi import application
from monitoring import consumers
from monitoring.consumers import StatusConsumer
from servers.models import McpServer

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]

ORIGIN = (b"origin", b"http://127.0.0.1")


def login_headers(staff: bool = True) -> list[tuple[bytes, bytes]]:
    user = get_user_model().objects.create_user(f"user-{staff}", password="x", is_staff=staff)
    client = Client()
    client.force_login(user)
    return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()), ORIGIN]


def make_servers(count: int) -> list[int]:
    return [
        McpServer.objects.create(name=f"s{i}", slug=f"s{i}", transport="streamable_http", url="http://x/mcp").pk
        for i in range(count)
    ]


@pytest.fixture
async def staff_headers() -> list[tuple[bytes, bytes]]:
    return await database_sync_to_async(login_headers)()


async def open_socket(headers: list[tuple[bytes, bytes]]) -> WebsocketCommunicator:
    socket = WebsocketCommunicator(application, "/ws/status/", headers=headers)
    connected, _ = await socket.connect(timeout=20)
    assert connected
    snapshot = await socket.receive_json_from(timeout=20)
    assert snapshot["type"] == "snapshot" and snapshot["reason"] == "connect"
    return socket


@pytest.fixture
async def socket(staff_headers: list[tuple[bytes, bytes]]) -> AsyncIterator[WebsocketCommunicator]:
    socket = await open_socket(staff_headers)
    yield socket
    await socket.disconnect(timeout=10)


def status(server_id: int, old: str, new: str, n: int = 0) -> dict[str, object]:
    return {
        "type": "status.changed",
        "server_id": server_id,
        "slug": f"s{server_id}",
        "old": old,
        "new": new,
        "reason": f"event {n}",
        "changed_at": f"2026-11-01T00:00:{n % 60:02d}+00:00",
    }


async def frames_until(socket: WebsocketCommunicator, done: object, timeout: float = 20) -> list[dict]:
    frames: list[dict] = []
    deadline = time.monotonic() + timeout
    while not done(frames):  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out; frames so far: {frames}"
        frames.append(await socket.receive_json_from(timeout=timeout))
    return frames


async def test_snapshot_has_servers_and_totals(staff_headers: list[tuple[bytes, bytes]]) -> None:
    await database_sync_to_async(make_servers)(2)
    socket = WebsocketCommunicator(application, "/ws/status/", headers=staff_headers)
    assert (await socket.connect(timeout=20))[0]
    snapshot = await socket.receive_json_from(timeout=20)
    assert [row["slug"] for row in snapshot["servers"]] == ["s0", "s1"]
    assert snapshot["totals"]["counts"]["unknown"] == 2
    assert {"calls", "timeline", "generated_at"} <= set(snapshot)
    await socket.disconnect(timeout=10)


async def test_many_events_become_few_batches_coalesced_per_server(socket: WebsocketCommunicator) -> None:
    layer = get_channel_layer()
    started = time.monotonic()
    for n in range(300):  # up <-> degraded: never critical
        server = n % 5
        await layer.group_send("status", status(server, "up", "degraded" if n % 2 else "up", n))
    last = {server: status(server, "up", "degraded" if n % 2 else "up", n) for n in range(300) for server in [n % 5]}

    def all_seen(frames: list[dict]) -> bool:
        latest = {e["server_id"]: e for f in frames for e in f["events"]}
        return all(latest.get(s, {}).get("reason") == last[s]["reason"] for s in last)

    frames = await frames_until(socket, all_seen)
    elapsed = time.monotonic() - started
    assert all(frame["type"] == "batch" for frame in frames)
    # At most one frame per 100 ms window (+2 for the partial windows at both ends), and far fewer than events.
    assert len(frames) <= elapsed / consumers.WINDOW + 2
    assert len(frames) <= 30, len(frames)
    for frame in frames:  # coalesced: one status event per server in a frame
        servers = [e["server_id"] for e in frame["events"] if e["kind"] == "status"]
        assert len(servers) == len(set(servers))


async def test_critical_event_goes_out_at_once_and_supersedes_the_window(
    staff_headers: list[tuple[bytes, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumers, "WINDOW", 2.0)  # a long window: a critical event must not wait for it
    socket = await open_socket(staff_headers)
    layer = get_channel_layer()
    await layer.group_send("status", status(1, "up", "degraded", 1))  # opens the window
    await layer.group_send("status", status(2, "up", "degraded", 2))
    sent = time.monotonic()
    await layer.group_send("status", status(2, "degraded", "down", 3))
    first = await socket.receive_json_from(timeout=20)
    assert first["type"] == "critical"
    assert first["event"]["server_id"] == 2 and first["event"]["new"] == "down"
    assert time.monotonic() - sent < 1.5  # well before the 2 s window ends
    batch = await socket.receive_json_from(timeout=20)
    assert batch["type"] == "batch"
    # Server 2's older "degraded" was dropped from the window: it must not follow its "down".
    assert [(e["server_id"], e["new"]) for e in batch["events"]] == [(1, "degraded")]
    await layer.group_send("status", status(2, "down", "up", 4))  # back up: critical too
    assert (await socket.receive_json_from(timeout=20))["type"] == "critical"
    await socket.disconnect(timeout=10)


async def test_calls_reach_the_tail_in_batches(socket: WebsocketCommunicator) -> None:
    calls = [
        {
            "server_id": 1,
            "server": "s1",
            "tool": "echo",
            "outcome": "ok",
            "latency_ms": 1.5,
            "at": "2026-11-01T00:00:00",
        }
        for _ in range(5)
    ]
    await get_channel_layer().group_send("calls", {"type": "calls.batch", "calls": calls, "skipped": 0})
    frame = await socket.receive_json_from(timeout=20)
    assert frame["type"] == "batch"
    assert [e["kind"] for e in frame["events"]] == ["call"] * 5
    assert frame["events"][0]["tool"] == "echo"


async def test_anonymous_is_refused_with_4401() -> None:
    socket = WebsocketCommunicator(application, "/ws/status/", headers=[ORIGIN])
    await socket.connect(timeout=20)
    closed = await socket.receive_output(timeout=20)
    assert closed == {"type": "websocket.close", "code": 4401}
    await socket.disconnect(timeout=10)


async def test_non_staff_is_refused_with_4403() -> None:
    headers = await database_sync_to_async(login_headers)(staff=False)
    socket = WebsocketCommunicator(application, "/ws/status/", headers=headers)
    await socket.connect(timeout=20)
    closed = await socket.receive_output(timeout=20)
    assert closed == {"type": "websocket.close", "code": 4403}
    await socket.disconnect(timeout=10)


async def test_foreign_origin_is_refused(staff_headers: list[tuple[bytes, bytes]]) -> None:
    headers = [h for h in staff_headers if h[0] != b"origin"] + [(b"origin", b"http://evil.example")]
    socket = WebsocketCommunicator(application, "/ws/status/", headers=headers)
    connected, _ = await socket.connect(timeout=20)
    assert not connected
    await socket.disconnect(timeout=1)  # the denier waits for a disconnect that never comes: cancelled


async def test_slow_client_overflows_then_gets_a_fresh_snapshot(
    staff_headers: list[tuple[bytes, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(StatusConsumer, "buffer_events", 5)
    gate = asyncio.Event()
    gate.set()
    original = StatusConsumer.send

    async def slow_send(self: StatusConsumer, *args: object, **kwargs: object) -> None:
        await gate.wait()  # a client that does not read: the send does not complete
        await original(self, *args, **kwargs)

    monkeypatch.setattr(StatusConsumer, "send", slow_send)
    socket = await open_socket(staff_headers)
    gate.clear()
    layer = get_channel_layer()
    await layer.group_send("status", status(1, "up", "degraded", 1))  # frame 1: stuck in the send
    await asyncio.sleep(0.6)
    calls = [{"server_id": 1, "server": "s1", "tool": "t", "outcome": "ok", "latency_ms": 1.0, "at": ""}] * 10
    await layer.group_send("calls", {"type": "calls.batch", "calls": calls, "skipped": 0})  # 10 > 5: overflow
    await asyncio.sleep(0.6)
    gate.set()
    stuck = await socket.receive_json_from(timeout=20)
    assert stuck["type"] == "batch" and stuck["events"][0]["kind"] == "status"
    resync = await socket.receive_json_from(timeout=20)
    assert resync["type"] == "snapshot" and resync["reason"] == "overflow"
    # Then deltas again.
    await layer.group_send("status", status(1, "degraded", "up", 2))
    after = await socket.receive_json_from(timeout=20)
    assert after["type"] == "batch" and after["events"][0]["new"] == "up"
    await socket.disconnect(timeout=10)


async def test_one_slow_client_does_not_delay_another(
    staff_headers: list[tuple[bytes, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = StatusConsumer.send
    stuck = asyncio.Event()
    slow: list[StatusConsumer] = []

    async def send(self: StatusConsumer, *args: object, **kwargs: object) -> None:
        if slow and self is slow[0]:
            await stuck.wait()
        await original(self, *args, **kwargs)

    monkeypatch.setattr(StatusConsumer, "send", send)
    first = await open_socket(staff_headers)
    slow.extend(consumers.fanout_subscribers())
    second = await open_socket(staff_headers)
    await get_channel_layer().group_send("status", status(3, "up", "degraded", 1))
    frame = await second.receive_json_from(timeout=20)
    assert frame["type"] == "batch"
    assert await first.receive_nothing(timeout=0.5)
    stuck.set()
    assert (await first.receive_json_from(timeout=20))["type"] == "batch"
    await first.disconnect(timeout=10)
    await second.disconnect(timeout=10)
