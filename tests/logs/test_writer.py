"""The batched COPY writer against a real PostgreSQL: flush on size, on time, on shutdown; outage and recovery."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection

from logs.writer import LogRecord, LogWriter
from tests.conftest import BASE_DIR, hub_env, wait_for
from tests.logs.conftest import database_outage, row_count

pytestmark = pytest.mark.django_db(transaction=True)

MakeWriter = Callable[..., LogWriter]


def records(count: int, tag: str = "t") -> list[LogRecord]:
    return [LogRecord(outcome="ok", server_slug="srv", tool=f"{tag}{i}", latency_ms=1.5) for i in range(count)]


def distinct_request_ids() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(DISTINCT request_id) FROM logs_requestlog")
        return int(cursor.fetchone()[0])


def test_flush_on_size(make_writer: MakeWriter) -> None:
    writer = make_writer(batch_size=50, flush_interval=3600)
    for record in records(50):
        writer.submit(record)

    wait_for(lambda: row_count() == 50, timeout=30, what="a full batch to be written")
    assert writer.stats.flushes_by_size >= 1
    assert writer.stats.flushes_by_time == 0

    for record in records(10, "late"):
        writer.submit(record)
    time.sleep(1.0)
    assert row_count() == 50  # a partial batch waits for its interval (an hour here)


def test_flush_on_time(make_writer: MakeWriter) -> None:
    writer = make_writer(batch_size=1000, flush_interval=0.3)
    for record in records(3):
        writer.submit(record)

    wait_for(lambda: row_count() == 3, timeout=30, what="the interval flush")
    assert writer.stats.flushes_by_time >= 1
    assert writer.stats.flushes_by_size == 0


def test_close_writes_everything_queued(make_writer: MakeWriter) -> None:
    writer = make_writer(batch_size=1000, flush_interval=3600)
    for record in records(2500):
        writer.submit(record)

    assert writer.close() is True
    assert row_count() == 2500
    with pytest.raises(RuntimeError):
        writer.submit(records(1)[0])


def test_submit_does_not_wait_for_the_database(make_writer: MakeWriter) -> None:
    writer = make_writer(batch_size=1000, flush_interval=0.2)
    batch = records(20_000)
    started = time.monotonic()
    for record in batch:
        writer.submit(record)
    submitting = time.monotonic() - started

    assert writer.flush(timeout=120) is True
    assert row_count() == 20_000
    assert writer.stats.dropped == 0
    assert submitting < 30  # loose: only shows submit() is a queue put, not a round trip per record


def test_resubmitted_record_is_written_once(make_writer: MakeWriter) -> None:
    writer = make_writer(batch_size=1000, flush_interval=0.2)
    record = records(1)[0]
    writer.submit(record)
    assert writer.flush() is True

    writer.submit(record)  # same request_id and created_at: the COPY hits the unique index
    writer.submit(records(1, "other")[0])
    assert writer.flush() is True

    assert row_count() == 2


def test_bad_values_are_made_to_fit(make_writer: MakeWriter) -> None:
    writer = make_writer(batch_size=1000, flush_interval=0.2)
    writer.submit(
        LogRecord(
            outcome="ok",
            tool="x" * 1000,
            token_name="t\x00" + "n" * 200,
            error="nul\x00byte",
            request_bytes=2**40,
            error_code=-32601,
        )
    )
    assert writer.flush() is True

    with connection.cursor() as cursor:
        cursor.execute("SELECT length(tool), token_name, error, request_bytes, error_code FROM logs_requestlog")
        assert cursor.fetchone() == (255, "t" + "n" * 99, "nulbyte", 2**31 - 1, -32601)


def test_outage_then_recovery_writes_every_record_once(
    make_writer: MakeWriter, admin_conn: psycopg.Connection[Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="logs.writer")
    spool = tmp_path / "spool"
    writer = make_writer(batch_size=100, flush_interval=0.2, spool_dir=spool)
    for record in records(150, "before"):
        writer.submit(record)
    wait_for(lambda: row_count() == 150, timeout=30, what="the records before the outage")
    backend = writer.backend_pid
    assert backend is not None

    with database_outage(admin_conn, [backend]):
        for chunk in range(3):
            for record in records(200, f"during{chunk}-"):
                writer.submit(record)
            time.sleep(0.3)
        # PostgreSQL refuses the writer: the records go to the disk spool, none is lost from memory.
        wait_for(lambda: writer.stats.spooled == 600, timeout=60, what="records spooled during the outage")
        assert any(spool.glob("*.jsonl"))
        assert row_count() == 150  # (this test's own connection was opened before the outage)
        assert writer.stats.failures >= 1

    for record in records(50, "after"):
        writer.submit(record)
    wait_for(lambda: row_count() == 800, timeout=60, what="the spool to be replayed after the outage")
    assert writer.flush() is True
    assert row_count() == distinct_request_ids() == 800
    # (the "after" records may have been spooled too, while the writer waited before reconnecting)
    assert writer.stats.replayed == writer.stats.spooled >= 600
    assert [p.name for p in spool.iterdir() if ".jsonl" in p.name] == []
    # One line when PostgreSQL goes away and one when it is back, however many batches were spooled.
    messages = [r.getMessage() for r in caplog.records if r.name == "logs.writer"]
    assert sum("unavailable" in m for m in messages) == 1, messages
    assert sum("writing to PostgreSQL again" in m for m in messages) == 1, messages


def test_spool_left_by_a_dead_process_is_replayed_once(make_writer: MakeWriter, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    already = records(5, "committed")
    writer = make_writer(batch_size=1000, flush_interval=0.2, spool_dir=spool)
    for record in already:
        writer.submit(record)
    assert writer.flush() is True
    writer.close()
    # A process that crashed after committing these but before deleting its spool file, and one that
    # died while replaying another file: both files are picked up, the committed rows are not doubled.
    pending = records(7, "pending")
    dead_pid = _dead_pid()
    (spool / f"{dead_pid}-1-aaaa.jsonl").write_text("".join(json.dumps(r.to_json()) + "\n" for r in already))
    (spool / f"{dead_pid}-2-bbbb.jsonl.claimed-{dead_pid}").write_text(
        "".join(json.dumps(r.to_json()) + "\n" for r in pending) + '{"torn line'
    )

    replayer = make_writer(batch_size=1000, flush_interval=0.2, spool_dir=spool)

    wait_for(lambda: row_count() == 12, timeout=30, what="the leftover spool files to be replayed")
    assert replayer.flush() is True
    assert row_count() == distinct_request_ids() == 12
    assert list(spool.iterdir()) == []


def test_a_spool_file_of_older_code_without_token_name_is_replayed(make_writer: MakeWriter, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    new = LogRecord(outcome="overloaded", tool="slow", token_id=3, token_name="ci-bot")
    old = {k: v for k, v in LogRecord(outcome="ok", tool="echo", token_id=3).to_json().items() if k != "token_name"}
    lines = [json.dumps(old), json.dumps(new.to_json())]
    (spool / f"{_dead_pid()}-1-cccc.jsonl").write_text("".join(line + "\n" for line in lines))

    writer = make_writer(batch_size=1000, flush_interval=0.2, spool_dir=spool)

    wait_for(lambda: row_count() == 2, timeout=30, what="the old spool file to be replayed")
    assert writer.flush() is True
    with connection.cursor() as cursor:
        cursor.execute("SELECT tool, outcome, token_id, token_name FROM logs_requestlog ORDER BY tool")
        assert cursor.fetchall() == [("echo", "ok", 3, ""), ("slow", "overloaded", 3, "ci-bot")]
    assert list(spool.iterdir()) == []


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


SUBMITTER = textwrap.dedent(
    """
    import signal, sys, time
    import django
    django.setup()
    from django.conf import settings
    settings.LOGS_WRITER_FLUSH_INTERVAL = 3600  # only the shutdown flush can write these
    from logs.writer import LogRecord, submit
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # what daphne, uvicorn and celery do
    for i in range(int(sys.argv[2])):
        submit(LogRecord(outcome="ok", server_slug=sys.argv[1], tool=f"t{i}"))
    print("submitted", flush=True)
    if sys.argv[3] == "wait":
        time.sleep(600)
    """
)


@pytest.mark.parametrize("ending", ["exit", "sigterm"])
def test_process_shutdown_flushes(ending: str, tmp_path: Path) -> None:
    slug = f"shutdown-{uuid.uuid4().hex[:8]}"
    env = hub_env(DJANGO_SETTINGS_MODULE="mcphub.settings", MCPHUB_VAR_DIR=str(tmp_path), PYTHONPATH=str(BASE_DIR))
    process = subprocess.Popen(
        [sys.executable, "-c", SUBMITTER, slug, "700", "wait" if ending == "sigterm" else "exit"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "submitted", process.stderr.read() if process.stderr else ""
        if ending == "sigterm":
            assert row_count() == 0
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM logs_requestlog WHERE server_slug = %s", [slug])
        assert cursor.fetchone()[0] == 700
    assert not any((tmp_path / "logs-spool").glob("*.jsonl*"))
    assert os.path.isdir(tmp_path / "logs-spool")


def test_a_dropped_connection_is_retried_without_spooling(
    make_writer: MakeWriter, admin_conn: psycopg.Connection[Any]
) -> None:
    writer = make_writer(batch_size=1000, flush_interval=0.2)
    writer.submit(records(1, "first")[0])
    assert writer.flush() is True
    backend = writer.backend_pid

    admin_conn.execute("SELECT pg_terminate_backend(%s)", [backend])  # e.g. a failover or an idle-killer
    for record in records(30, "next"):
        writer.submit(record)

    assert writer.flush() is True
    assert row_count() == distinct_request_ids() == 31
    assert writer.stats.failures == 1
    assert writer.stats.spooled == 0
    assert writer.backend_pid != backend
