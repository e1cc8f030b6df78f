"""Request-log benchmark: batched COPY writer vs per-row ORM inserts, partition drop vs DELETE, windowed query.

Run from the repository root (uses DATABASE_URL, else the embedded PostgreSQL, like the hub):

    .venv/bin/python benchmarks/logs.py            # the figures in the README (a few minutes)
    .venv/bin/python benchmarks/logs.py --quick    # smaller data, for a smoke run

Everything happens in a scratch table ``logs_bench_requestlog`` made ``LIKE logs_requestlog
INCLUDING ALL`` (same columns, indexes, partitioning and DEFAULT partition, its own id sequence),
which is dropped at the end: the hub's own request log is not touched. Bulk rows are generated
in SQL (``INSERT ... SELECT generate_series``) into a plain table that is then attached as a
partition, which is how an operator would backfill too.

Targets (issue 5): writer >= 50 000 rows/s and >= 20x per-row ORM inserts; dropping a month of
1 million rows >= 100x faster than DELETE of the same rows; a one-hour-window query over
>= 10 million rows in 6 partitions with p50 <= 20 ms.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcphub.settings")

import django  # noqa: E402

from mcphub import embedded  # noqa: E402

embedded.start_unconfigured()
django.setup()

from django.db import connection, models  # noqa: E402

from logs import partitions  # noqa: E402
from logs.models import RequestLog, RequestLogQuerySet  # noqa: E402
from logs.writer import LogRecord, LogWriter  # noqa: E402

TABLE = "logs_bench_requestlog"
SEQUENCE = f"{TABLE}_id_seq"
RETENTION_MONTH = datetime(2000, 12, 1, tzinfo=UTC)  # dropped whole
DELETE_MONTH = datetime(2001, 1, 1, tzinfo=UTC)  # emptied with DELETE
QUERY_MONTHS = [partitions.add_months(datetime(2001, 2, 1, tzinfo=UTC), i) for i in range(6)]
INGEST_MONTH = datetime(2001, 8, 1, tzinfo=UTC)
TARGETS = {"writer_rows_s": 50_000, "writer_vs_orm": 20, "drop_vs_delete": 100, "query_p50_ms": 20}


def bench_model() -> type[models.Model]:
    """RequestLog's fields and queryset on the scratch table (per-row ORM inserts and the windowed query)."""
    attrs: dict[str, object] = {
        "__module__": __name__,
        "Meta": type("Meta", (), {"db_table": TABLE, "app_label": "logs", "managed": False}),
        "objects": RequestLogQuerySet.as_manager(),
    }
    for field in RequestLog._meta.concrete_fields:
        attrs[field.name] = field.clone()
    return type("BenchRequestLog", (models.Model,), attrs)


def sql(statement: str, params: list[object] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def create_table() -> None:
    drop_table()
    sql(f"CREATE SEQUENCE {SEQUENCE}")
    sql(f"CREATE TABLE {TABLE} (LIKE logs_requestlog INCLUDING ALL) PARTITION BY RANGE (created_at)")
    sql(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{SEQUENCE}')")
    sql(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")


def drop_table() -> None:
    sql(f"DROP TABLE IF EXISTS {TABLE} CASCADE")
    for month in [RETENTION_MONTH, DELETE_MONTH, *QUERY_MONTHS, INGEST_MONTH]:
        sql(f"DROP TABLE IF EXISTS {partitions.partition_name(month, TABLE)}")
    sql(f"DROP SEQUENCE IF EXISTS {SEQUENCE}")


def load_month(month: datetime, rows: int) -> float:
    """``rows`` rows spread over ``month``, generated in SQL into a plain table, then attached."""
    name = partitions.partition_name(month, TABLE)
    end = partitions.add_months(month, 1)
    started = time.perf_counter()
    sql(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    sql(
        f"""
        INSERT INTO {name} (created_at, request_id, server_id, server_slug, tool, token_id, protocol_era,
                            outcome, latency_ms, request_bytes, response_bytes, error_code, error)
        SELECT %(start)s::timestamptz + (%(end)s::timestamptz - %(start)s::timestamptz) * (i::float8 / %(n)s),
               gen_random_uuid(), i %% 20 + 1, 'server-' || (i %% 20 + 1), 'tool_' || (i %% 50), i %% 7,
               CASE WHEN i %% 3 = 0 THEN 'handshake' ELSE 'stateless' END,
               (ARRAY['ok','ok','ok','ok','ok','ok','ok','tool_error','timeout','upstream_down'])[i %% 10 + 1],
               random() * 500, 200 + i %% 1000, 500 + i %% 5000,
               CASE WHEN i %% 10 >= 7 THEN -32000 END, CASE WHEN i %% 10 >= 7 THEN 'upstream failed' ELSE '' END
        FROM generate_series(0, %(n)s - 1) AS i
        """,
        {"start": month, "end": end, "n": rows},  # type: ignore[arg-type]
    )
    sql(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)", [month, end])
    sql(f"ANALYZE {name}")
    return time.perf_counter() - started


def bench_ingest(model: type[models.Model], writer_rows: int, orm_rows: int) -> dict[str, float]:
    partitions.ensure_partitions(months_ahead=0, now=INGEST_MONTH, table=TABLE)
    spool = Path(tempfile.mkdtemp(prefix="logs-bench-spool-"))
    try:
        writer = LogWriter(table=TABLE, spool_dir=spool, max_buffer=writer_rows + 10_000)
        warmup = [record(i) for i in range(2000)]
        for item in warmup:
            writer.submit(item)
        writer.flush(timeout=120)
        batch = [record(i) for i in range(writer_rows)]  # built beforehand: the caller's cost, not the writer's
        started = time.perf_counter()
        for item in batch:
            writer.submit(item)
        assert writer.flush(timeout=600), "writer did not write everything"
        assert writer.stats.dropped == 0 and writer.stats.spooled == 0, writer.stats
        writer_s = time.perf_counter() - started
        writer.close()
    finally:
        shutil.rmtree(spool, ignore_errors=True)

    fields = [{k: v for k, v in zip(_names(), record(i).as_row(), strict=True)} for i in range(orm_rows)]
    started = time.perf_counter()
    for values in fields:
        model.objects.create(**values)
    orm_s = time.perf_counter() - started
    return {"writer_rows_s": writer_rows / writer_s, "orm_rows_s": orm_rows / orm_s}


def _names() -> tuple[str, ...]:
    from logs.writer import COLUMNS

    return COLUMNS


def record(i: int) -> LogRecord:
    return LogRecord(
        outcome="ok",
        server_id=i % 20 + 1,
        server_slug=f"server-{i % 20 + 1}",
        tool=f"tool_{i % 50}",
        token_id=i % 7,
        protocol_era="stateless",
        latency_ms=12.5,
        request_bytes=300,
        response_bytes=1200,
        created_at=INGEST_MONTH + timedelta(seconds=i % 86_400),
    )


def wal_lsn() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()")
        return str(cursor.fetchone()[0])


def wal_bytes_since(lsn: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [lsn])
        return int(cursor.fetchone()[0])


class _DropTimings(logging.Handler):
    """Collects the detach/drop split that logs.partitions logs for each dropped month."""

    def __init__(self) -> None:
        super().__init__()
        self.timings: list[dict[str, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "detach_ms"):
            self.timings.append({"detach_ms": record.detach_ms, "drop_ms": record.drop_ms})


def bench_retention(rows: int) -> dict[str, float]:
    load_month(RETENTION_MONTH, rows)
    load_month(DELETE_MONTH, rows)
    end = partitions.add_months(DELETE_MONTH, 1)
    sql("CHECKPOINT")
    wal = wal_lsn()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE created_at >= %s AND created_at < %s", [DELETE_MONTH, end])
        deleted = cursor.rowcount
    delete_s = time.perf_counter() - started
    started = time.perf_counter()
    sql(f"VACUUM {partitions.partition_name(DELETE_MONTH, TABLE)}")  # before the space and index entries are reusable
    vacuum_s = time.perf_counter() - started
    delete_wal = wal_bytes_since(wal)
    sql("CHECKPOINT")
    wal = wal_lsn()
    # Keep the current month + 1 full month before it, "now" being in February 2001: drops December 2000 only.
    handler = _DropTimings()
    logging.getLogger("logs.partitions").addHandler(handler)
    try:
        started = time.perf_counter()
        dropped = partitions.drop_partitions(older_than_months=1, now=datetime(2001, 2, 15, tzinfo=UTC), table=TABLE)
        drop_s = time.perf_counter() - started
        drop_wal = wal_bytes_since(wal)
    finally:
        logging.getLogger("logs.partitions").removeHandler(handler)
    assert dropped == [partitions.partition_name(RETENTION_MONTH, TABLE)], dropped
    assert deleted == rows
    return {
        "delete_s": delete_s,
        "vacuum_s": vacuum_s,
        "drop_s": drop_s,
        "delete_wal": delete_wal,
        "drop_wal": drop_wal,
        "detach_s": handler.timings[0]["detach_ms"] / 1000,
        "unlink_s": handler.timings[0]["drop_ms"] / 1000,
    }


def bench_query(model: type[models.Model], rows: int, samples: int) -> dict[str, float]:
    per_month = rows // len(QUERY_MONTHS)
    load_s = sum(load_month(month, per_month) for month in QUERY_MONTHS)
    first, last = QUERY_MONTHS[0], partitions.add_months(QUERY_MONTHS[-1], 1)
    hours = int((last - first).total_seconds() // 3600) - 1
    rng = random.Random(5)

    def one_query(filtered: bool) -> float:
        since = first + timedelta(hours=rng.randrange(hours))
        rows_qs = model.objects.window(since, since + timedelta(hours=1))
        if filtered:
            rows_qs = rows_qs.filter(server_id=rng.randrange(1, 21))
        started = time.perf_counter()
        page = list(rows_qs.newest_first()[:100])
        elapsed = (time.perf_counter() - started) * 1000
        assert page, "empty window"
        return elapsed

    for _ in range(20):
        one_query(False)
    plain = sorted(one_query(False) for _ in range(samples))
    filtered = sorted(one_query(True) for _ in range(samples))
    probe = model.objects.window(QUERY_MONTHS[2] + timedelta(days=3), QUERY_MONTHS[2] + timedelta(days=3, hours=1))
    plan = probe.newest_first()[:100].explain()
    touched = [p.name for p in partitions.list_partitions(table=TABLE) if p.name in plan]
    return {
        "rows": per_month * len(QUERY_MONTHS),
        "load_s": load_s,
        "p50_ms": statistics.median(plain),
        "p95_ms": plain[int(len(plain) * 0.95) - 1],
        "filtered_p50_ms": statistics.median(filtered),
        "partitions_touched": len(touched),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data (smoke run; figures not comparable)")
    parser.add_argument("--only", choices=["ingest", "retention", "query"], action="append", help="run only these")
    args = parser.parse_args()
    parts = set(args.only or ["ingest", "retention", "query"])
    scale = 0.05 if args.quick else 1.0
    writer_rows, orm_rows = int(200_000 * scale) or 1000, int(3_000 * scale) or 100
    retention_rows, query_rows = int(1_000_000 * scale), int(10_200_000 * scale)

    with connection.cursor() as cursor:
        print(f"PostgreSQL {cursor.connection.info.server_version}, {os.cpu_count()} CPUs", flush=True)
    model = bench_model()
    started = time.perf_counter()
    checks: dict[str, bool] = {}
    create_table()
    try:
        if "ingest" in parts:
            ingest = bench_ingest(model, writer_rows, orm_rows)
            ratio = ingest["writer_rows_s"] / ingest["orm_rows_s"]
            print(
                f"ingest:    batched COPY writer {ingest['writer_rows_s']:,.0f} rows/s ({writer_rows:,} rows), "
                f"per-row ORM inserts {ingest['orm_rows_s']:,.0f} rows/s: {ratio:,.0f}x",
                flush=True,
            )
            checks["writer >= 50 000 rows/s"] = ingest["writer_rows_s"] >= TARGETS["writer_rows_s"]
            checks["writer >= 20x ORM"] = ratio >= TARGETS["writer_vs_orm"]
        if "retention" in parts:
            r = bench_retention(retention_rows)
            total, cleanup = r["delete_s"] / r["drop_s"], (r["delete_s"] + r["vacuum_s"]) / r["drop_s"]
            print(
                f"retention: one month of {retention_rows:,} rows: DELETE {r['delete_s'] * 1000:,.0f} ms "
                f"(+ VACUUM {r['vacuum_s'] * 1000:,.0f} ms to reclaim it; {r['delete_wal'] / 2**20:,.0f} MB of WAL); "
                f"drop_partitions {r['drop_s'] * 1000:,.1f} ms ({r['drop_wal'] / 2**10:,.0f} kB of WAL) "
                f"= DETACH {r['detach_s'] * 1000:,.1f} ms (the only step locking the live table) "
                f"+ DROP of the detached table {r['unlink_s'] * 1000:,.1f} ms (freeing its files)",
                flush=True,
            )
            print(
                f"           DELETE / drop_partitions {total:,.1f}x, "
                f"(DELETE + VACUUM) / drop_partitions {cleanup:,.1f}x, "
                f"DELETE / DETACH {r['delete_s'] / r['detach_s']:,.0f}x",
                flush=True,
            )
            checks["drop_partitions >= 100x DELETE"] = total >= TARGETS["drop_vs_delete"]
            checks["DETACH >= 100x DELETE"] = r["delete_s"] / r["detach_s"] >= TARGETS["drop_vs_delete"]
        if "query" in parts:
            q = bench_query(model, query_rows, samples=200)
            print(
                f"query:     1-hour window, newest 100 of {q['rows']:,} rows in 6 partitions: "
                f"p50 {q['p50_ms']:.2f} ms, p95 {q['p95_ms']:.2f} ms; "
                f"with a server filter p50 {q['filtered_p50_ms']:.2f} ms; "
                f"partitions scanned {q['partitions_touched']} (data generated in {q['load_s']:.0f} s)",
                flush=True,
            )
            checks["query p50 <= 20 ms"] = q["p50_ms"] <= TARGETS["query_p50_ms"]
    finally:
        drop_table()
    print("targets:   " + ", ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in checks.items()))
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
