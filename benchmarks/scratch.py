"""A scratch database and Redis databases for benchmarks, on the servers the hub would use."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDIS_BASE_DB = 13  # broker 13, cache 14, channel layer 15: apart from a running hub's 0-2


def scratch_database(suffix: str) -> tuple[str, str, dict[str, Any]]:
    """Create (or recreate) `<name>_<suffix>`; returns (database URL, Redis URL, psycopg connect args)."""
    import dj_database_url
    import psycopg

    from mcphub import embedded

    base = os.environ.get("DATABASE_URL") or embedded.start_postgres()
    redis = os.environ.get("REDIS_URL") or embedded.start_redis()
    db = dj_database_url.parse(base)
    name = f"{db['NAME']}_{suffix}"
    host = db.get("OPTIONS", {}).get("host") or db["HOST"]
    connect = {"host": host, "port": db["PORT"] or None, "user": db["USER"], "password": db["PASSWORD"] or None}
    with psycopg.connect(dbname="postgres", autocommit=True, **connect) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(base)._replace(path=f"/{name}"))
    return url, urlunsplit(urlsplit(redis)._replace(path=f"/{REDIS_BASE_DB}")), {**connect, "name": name}
