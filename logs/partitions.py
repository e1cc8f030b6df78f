"""Monthly partitions of the request log: create ahead, drain DEFAULT, drop past retention, list.

Partitions are named ``<table>_pYYYY_MM`` and cover ``[first of month, first of
next month)`` in UTC. Every change runs under a PostgreSQL advisory lock on the
table, so any number of callers (two beats, a worker and an operator at the
shell) can run these at once: the second waits, then finds the work done.

Dropping a month detaches it first, then drops the detached table (``DROP`` of a
standalone table does not lock the parent). ``DETACH ... CONCURRENTLY`` would not
block readers and writers, but PostgreSQL refuses it when the table has a DEFAULT
partition (ours has one) and inside a transaction block; so it is used only when
neither applies, else a plain ``DETACH`` runs in a short transaction with a lock
timeout (it needs a brief ACCESS EXCLUSIVE lock on the parent) and is retried.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import OperationalError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from logs.models import TABLE

logger = logging.getLogger(__name__)

DETACH_LOCK_TIMEOUT = "5s"
DETACH_ATTEMPTS = 5

_BOUND_RE = re.compile(r"FOR VALUES FROM \((?P<lower>[^)]*)\) TO \((?P<upper>[^)]*)\)")


@dataclass(frozen=True)
class PartitionInfo:
    """One partition: bounds (None for DEFAULT or MINVALUE/MAXVALUE), estimated rows, size on disk."""

    name: str
    lower: datetime | None
    upper: datetime | None
    is_default: bool
    estimated_rows: int
    size_bytes: int
    detach_pending: bool = False


def month_start(moment: datetime) -> datetime:
    """The first instant (UTC) of the month holding ``moment``."""
    moment = moment.astimezone(UTC) if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def add_months(start: datetime, months: int) -> datetime:
    """``start`` (a month start) moved by ``months`` whole months."""
    index = start.year * 12 + start.month - 1 + months
    return start.replace(year=index // 12, month=index % 12 + 1)


def partition_name(start: datetime, table: str = TABLE) -> str:
    return f"{table}_p{start.year:04d}_{start.month:02d}"


def default_partition_name(table: str = TABLE) -> str:
    return f"{table}_default"


def _qn(connection: BaseDatabaseWrapper, name: str) -> str:
    return connection.ops.quote_name(name)


def _lock_key(table: str) -> str:
    return f"{table}:partitions"


def _parse_bound(text: str) -> datetime | None:
    text = text.strip()
    if text in {"MINVALUE", "MAXVALUE"}:
        return None
    return datetime.fromisoformat(text.strip("'")).astimezone(UTC)


def list_partitions(using: str = "default", table: str = TABLE) -> list[PartitionInfo]:
    """The table's partitions, oldest first, DEFAULT last; catalog reads only (no scan)."""
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), c.reltuples, s.n_live_tup,
                   pg_total_relation_size(c.oid), i.inhdetachpending
            FROM pg_inherits i
            JOIN pg_class c ON c.oid = i.inhrelid
            LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
            WHERE i.inhparent = to_regclass(%s)
            """,
            [table],
        )
        rows = cursor.fetchall()
    partitions = []
    for name, bound, reltuples, live_tuples, size, detach_pending in rows:
        # reltuples is -1 until the first VACUUM/ANALYZE; the statistics collector's live count fills in.
        estimate = int(reltuples) if reltuples is not None and reltuples >= 0 else int(live_tuples or 0)
        match = _BOUND_RE.search(bound or "")
        partitions.append(
            PartitionInfo(
                name=name,
                lower=_parse_bound(match["lower"]) if match else None,
                upper=_parse_bound(match["upper"]) if match else None,
                is_default=bound == "DEFAULT",
                estimated_rows=estimate,
                size_bytes=int(size),
                detach_pending=bool(detach_pending),
            )
        )
    far_future = datetime.max.replace(tzinfo=UTC)
    return sorted(partitions, key=lambda p: (p.is_default, p.lower or far_future, p.name))


def ensure_partitions(
    months_ahead: int = 3, now: datetime | None = None, using: str = "default", table: str = TABLE
) -> list[str]:
    """Create the partitions of this month and the next ``months_ahead`` months, and of any month
    that has rows waiting in the DEFAULT partition (moving those rows in). Returns the names created.

    Idempotent; concurrent callers serialise on an advisory lock and the later ones create nothing.
    """
    start = month_start(now or timezone.now())
    wanted = {add_months(start, offset) for offset in range(months_ahead + 1)}
    connection = connections[using]
    created: list[str] = []
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [_lock_key(table)])
        partitions = list_partitions(using, table)
        existing = {p.lower for p in partitions if not p.is_default}
        default = next((p.name for p in partitions if p.is_default), None)
        if default:
            cursor.execute(
                f"SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC') FROM {_qn(connection, default)}"
            )
            wanted |= {month.replace(tzinfo=UTC) for (month,) in cursor.fetchall()}
        for month in sorted(wanted - existing):
            moved = _create_partition(connection, cursor, table, month, default)
            created.append(partition_name(month, table))
            logger.info("created partition %s (%d rows moved from DEFAULT)", created[-1], moved)
    return created


def _create_partition(
    connection: BaseDatabaseWrapper, cursor: CursorWrapper, table: str, month: datetime, default: str | None
) -> int:
    """Create one month's partition; rows of that month sitting in DEFAULT are moved into it.

    PostgreSQL refuses a new partition while DEFAULT holds rows of its range, so the month is
    built as a plain table, filled from DEFAULT, then attached (ATTACH only needs a SHARE UPDATE
    EXCLUSIVE lock on the parent: reads and writes of other months carry on).
    """
    name = _qn(connection, partition_name(month, table))
    parent = _qn(connection, table)
    lower, upper = month.isoformat(), add_months(month, 1).isoformat()
    if default is None:
        cursor.execute(f"CREATE TABLE {name} PARTITION OF {parent} FOR VALUES FROM (%s) TO (%s)", [lower, upper])
        return 0
    default_q = _qn(connection, default)
    # No new rows in DEFAULT until the month is attached (readers are not blocked).
    cursor.execute(f"LOCK TABLE {default_q} IN EXCLUSIVE MODE")
    cursor.execute(f"CREATE TABLE {name} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    cursor.execute(
        f"WITH moved AS (DELETE FROM {default_q} WHERE created_at >= %s AND created_at < %s RETURNING *) "
        f"INSERT INTO {name} SELECT * FROM moved",
        [lower, upper],
    )
    moved = cursor.rowcount
    cursor.execute(f"ALTER TABLE {parent} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)", [lower, upper])
    return moved


def retention_cutoff(older_than_months: int, now: datetime | None = None) -> datetime:
    """Partitions ending at or before this instant are past retention: the current month and the
    ``older_than_months`` full months before it are kept."""
    return add_months(month_start(now or timezone.now()), -older_than_months)


def drop_partitions(
    older_than_months: int, now: datetime | None = None, using: str = "default", table: str = TABLE
) -> list[str]:
    """Detach and drop the monthly partitions that end at or before :func:`retention_cutoff`.

    Returns the names dropped. Rows of those months still in DEFAULT would be moved out by
    :func:`ensure_partitions` first (the retention task runs it before this).
    """
    if older_than_months < 0:
        raise ValueError("older_than_months must be >= 0")
    cutoff = retention_cutoff(older_than_months, now)
    connection = connections[using]
    parent = _qn(connection, table)
    dropped: list[str] = []
    with connection.cursor() as cursor:
        # A session-level lock: DETACH CONCURRENTLY runs outside any transaction block.
        cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", [_lock_key(table)])
        try:
            partitions = list_partitions(using, table)
            has_default = any(p.is_default for p in partitions)
            concurrently = not has_default and not connection.in_atomic_block
            for part in partitions:
                if part.is_default or part.upper is None or part.upper > cutoff:
                    continue
                name = _qn(connection, part.name)
                started = time.perf_counter()
                if part.detach_pending:  # an interrupted DETACH CONCURRENTLY
                    cursor.execute(f"ALTER TABLE {parent} DETACH PARTITION {name} FINALIZE")
                elif concurrently:
                    cursor.execute(f"ALTER TABLE {parent} DETACH PARTITION {name} CONCURRENTLY")
                else:
                    _detach_with_lock_timeout(connection, using, parent, name)
                detached = time.perf_counter()
                cursor.execute(f"DROP TABLE {name}")  # the detached table: no lock on the parent any more
                timings = {"detach_ms": (detached - started) * 1000, "drop_ms": (time.perf_counter() - detached) * 1000}
                dropped.append(part.name)
                logger.info(
                    "dropped partition %s (about %d rows; detach %.1f ms, drop %.1f ms)",
                    part.name,
                    part.estimated_rows,
                    timings["detach_ms"],
                    timings["drop_ms"],
                    extra=timings,
                )
        finally:
            cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [_lock_key(table)])
    return dropped


def _detach_with_lock_timeout(connection: BaseDatabaseWrapper, using: str, parent: str, name: str) -> None:
    """Plain DETACH in a short transaction; give up waiting for the lock after a few seconds and
    retry, so a long query never makes every writer queue behind us."""
    for attempt in range(1, DETACH_ATTEMPTS + 1):
        try:
            with transaction.atomic(using=using), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = '{DETACH_LOCK_TIMEOUT}'")
                cursor.execute(f"ALTER TABLE {parent} DETACH PARTITION {name}")
            return
        except OperationalError:
            if attempt == DETACH_ATTEMPTS:
                raise
            logger.warning("DETACH of %s timed out waiting for its lock (attempt %d), retrying", name, attempt)
            time.sleep(attempt)
