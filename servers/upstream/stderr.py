"""The last lines each stdio server wrote to stderr, kept in Redis so every process sees them.

The supervisor (web or worker process) appends; the admin reads. Bounded per server.
"""

from __future__ import annotations

from django_redis import get_redis_connection

MAX_LINES = 200


def _key(server_id: int) -> str:
    return f"mcphub:stderr:{server_id}"


def append_lines(server_id: int, lines: list[str]) -> None:
    if not lines:
        return
    redis = get_redis_connection("default")
    pipe = redis.pipeline()
    pipe.rpush(_key(server_id), *[line[:2000] for line in lines])
    pipe.ltrim(_key(server_id), -MAX_LINES, -1)
    pipe.execute()


def recent_lines(server_id: int, limit: int = 50) -> list[str]:
    """The newest `limit` lines, oldest first."""
    raw = get_redis_connection("default").lrange(_key(server_id), -limit, -1)
    return [line.decode("utf-8", "replace") for line in raw]


def clear(server_id: int) -> None:
    get_redis_connection("default").delete(_key(server_id))
