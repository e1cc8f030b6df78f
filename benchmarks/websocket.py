"""/ws/status/ under load: 500 dashboard clients, 1000 status events published within 1 s.

    .venv/bin/python benchmarks/websocket.py [--clients 500] [--events 1000]

Starts a web server on a free loopback port (the hub's PostgreSQL and Redis, from DATABASE_URL /
REDIS_URL or the embedded servers), logs one staff user in once and reuses its session cookie
for every client (``websockets`` library). Then publishes the events to the channel layer group
"status" (up <-> degraded of 20 servers: never critical, so batched) at an even pace over 1 s,
each stamped with its send time. Prints frames per client vs events (target >= 10x fewer) and
the delivery latency of the events that reached the clients (target p99 <= 200 ms). Events
superseded within a window (same server) are coalesced away by design: only the latest counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcphub.settings")

SERVERS = 20


def staff_cookie() -> str:
    """A session cookie of a staff user made for the benchmark (logged in once, reused by all clients)."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(username="bench-websocket", defaults={"is_staff": True})
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


SENT_AT = re.compile(r'"sent_at":([0-9.]+)')


async def client(url: str, cookie: str, origin: str, ready: asyncio.Event, out: dict) -> None:
    """One dashboard connection: counts frames and the delivery latency of each event in them (until cancelled).

    The timestamps are read with a regular expression rather than by decoding each frame: 500 clients
    decoding every frame in one process would make the benchmark measure its own CPU use.
    """
    import websockets

    async with websockets.connect(
        url, additional_headers={"Cookie": f"sessionid={cookie}"}, origin=origin, max_size=None, open_timeout=120
    ) as socket:
        first = json.loads(await socket.recv())
        assert first["type"] == "snapshot", first
        ready.set()
        async for raw in socket:
            now = time.time()
            out["frames"] += 1
            out["latencies"].extend((now - float(sent_at)) * 1000 for sent_at in SENT_AT.findall(raw))


async def run(base: str, clients: int, events: int) -> None:

    cookie = await asyncio.to_thread(staff_cookie)
    url = base.replace("http", "ws") + "/ws/status/"
    results = [{"frames": 0, "latencies": []} for _ in range(clients)]
    readies = [asyncio.Event() for _ in range(clients)]
    started = time.monotonic()
    tasks = []
    for i in range(clients):  # in waves: web server accepts a few hundred handshakes at once without trouble
        tasks.append(asyncio.create_task(client(url, cookie, base, readies[i], results[i])))
        if i % 50 == 49:
            await asyncio.sleep(0.2)
    await asyncio.wait_for(asyncio.gather(*(ready.wait() for ready in readies)), timeout=300)
    print(f"{clients} clients connected (snapshot received) in {time.monotonic() - started:.1f} s")
    await asyncio.sleep(2)
    for result in results:
        result["frames"] = 0
    # The publisher runs in a process of its own: sharing a CPU with 500 clients would delay it.
    publisher = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--publish", str(events), stdout=asyncio.subprocess.PIPE
    )
    output, _ = await publisher.communicate()
    published = float(output.decode().strip().splitlines()[-1])
    await asyncio.sleep(3)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    frames = [r["frames"] for r in results]
    latencies = [ms for r in results for ms in r["latencies"]]
    print(f"published {events} events in {published:.2f} s to {clients} clients")
    print(
        f"frames per client: mean {statistics.mean(frames):.1f}, max {max(frames)} "
        f"-> {events / statistics.mean(frames):.0f}x fewer frames than events (target >= 10x)"
    )
    print(
        f"delivered events: {len(latencies)} ({len(latencies) / clients:.0f} per client, after coalescing); "
        f"latency p50 {pct(latencies, 0.5):.0f} ms, p95 {pct(latencies, 0.95):.0f} ms, "
        f"p99 {pct(latencies, 0.99):.0f} ms, max {max(latencies):.0f} ms (target p99 <= 200 ms)"
    )


async def publish(events: int) -> None:
    """Send `events` status changes to the channel layer at an even pace over one second."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    publish_start = time.monotonic()
    for n in range(events):
        target = publish_start + n / events
        if (delay := target - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        server = n % SERVERS + 1
        await layer.group_send(
            "status",
            {
                "type": "status.changed",
                "server_id": 100000 + server,
                "slug": f"bench-{server}",
                "old": "up",
                "new": "degraded" if n % 2 else "up",
                "reason": f"benchmark event {n}",
                "changed_at": "",
                "sent_at": time.time(),
            },
        )
    print(time.monotonic() - publish_start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--publish", type=int, metavar="EVENTS", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if not args.publish:
        # A scratch database and Redis DBs of our own; the publisher subprocess inherits them.
        from scratch import scratch_database

        url, redis_url, _connect = scratch_database("bench_ws")
        os.environ.update(DATABASE_URL=url, REDIS_URL=redis_url)

    import django

    django.setup()
    if args.publish:
        asyncio.run(publish(args.publish))
        return
    from django.core.management import call_command

    from tests.conftest import free_port, http_get, uvicorn_command, wait_for

    call_command("migrate", verbosity=0)
    port = free_port()
    log = open(BASE_DIR / "var" / "bench-websocket-web.log", "wb")  # noqa: SIM115
    web = subprocess.Popen(
        uvicorn_command(port),
        cwd=BASE_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(base + "/healthz", timeout=5).status == 200, timeout=60, what="web server")
        asyncio.run(run(base, args.clients, args.events))
    finally:
        web.terminate()
        web.wait(timeout=30)
        log.close()


if __name__ == "__main__":
    main()
