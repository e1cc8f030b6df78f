"""Fixtures of the request-log tests: scratch partitions, writers, an admin connection for outages."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from logs import partitions
from logs.writer import LogWriter, conninfo_from_settings


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def row_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM logs_requestlog")
        return int(cursor.fetchone()[0])


def rows_by_partition() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text, count(*) FROM logs_requestlog GROUP BY 1")
        return dict(cursor.fetchall())


@pytest.fixture
def scratch_partitions(transactional_db: None) -> Iterator[None]:
    """Partitions a test creates (far from today) are dropped afterwards; the DEFAULT is put back."""
    before = {p.name for p in partitions.list_partitions()}
    yield
    with connection.cursor() as cursor:
        names = {p.name for p in partitions.list_partitions()}
        if "logs_requestlog_default" not in names:
            cursor.execute("CREATE TABLE IF NOT EXISTS logs_requestlog_default PARTITION OF logs_requestlog DEFAULT")
        for name in names - before - {"logs_requestlog_default"}:
            cursor.execute(f'DROP TABLE IF EXISTS "{name}"')


@pytest.fixture
def make_writer(tmp_path: Path) -> Iterator[Callable[..., LogWriter]]:
    """LogWriters on the test database with a private spool folder; closed after the test."""
    writers: list[LogWriter] = []

    def make(**options: Any) -> LogWriter:
        options.setdefault("spool_dir", tmp_path / "spool")
        writer = LogWriter(**options)
        writers.append(writer)
        return writer

    yield make
    for writer in writers:
        writer.close(timeout=30)


@pytest.fixture
def admin_conn() -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the `postgres` database (to cut the test database off and back)."""
    params = conninfo_from_settings()
    params["dbname"] = "postgres"
    params["application_name"] = "mcphub-tests-admin"
    with psycopg.connect(**params, autocommit=True) as conn:
        yield conn


@contextlib.contextmanager
def database_outage(admin: psycopg.Connection[Any], backend_pids: list[int]) -> Iterator[None]:
    """A real outage for the given backends: new connections to the test database are refused
    (ALLOW_CONNECTIONS false) and those backends are terminated; connections are allowed again after."""
    dbname = settings.DATABASES["default"]["NAME"]
    admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
    try:
        for pid in backend_pids:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        yield
    finally:
        admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
