"""The request-log writer: records reach PostgreSQL in batches, off the request path, exactly once.

One :class:`LogWriter` per process (:func:`get_writer`). ``submit(record)`` only puts
the record into a bounded in-memory queue (never waits for the database); a
background thread writes batches with ``COPY`` (psycopg 3) on its own connection,
built from Django's ``DATABASES`` (so it works from async code and any thread):
every ``flush_interval`` seconds (1 s) or every ``batch_size`` records (1000),
whichever comes first.

Nothing lost while PostgreSQL is down: a batch that fails is retried once on a
fresh connection (covers a dropped connection or a restarted server); if that
fails too the batch is written to a spool file under ``logs_conf().spool_dir``
(``var/logs-spool``: written to a temporary name, fsynced, then renamed, so a
spool file is either complete or absent), and later batches go straight to the
spool until a reconnection attempt (backoff 0.5 s doubling to 5 s) succeeds.
Then every spool file is replayed and deleted. Memory stays bounded: the queue
holds at most ``max_buffer`` records (``submit`` returns False and counts
``stats.dropped`` only if the queue is full, i.e. the thread cannot even keep up
with writing to local disk).

Never written twice: ``request_id`` (with ``created_at``; PostgreSQL's unique
indexes on a partitioned table must include the partition key) is the idempotency
key. A batch's first attempt is a plain ``COPY`` into the table (fastest); any batch
that may already be in the table (a retry after a failure whose commit outcome is
unknown, a spool replay, or a COPY that hit the unique index) is copied into a
temporary table and inserted with ``ON CONFLICT (request_id, created_at) DO
NOTHING``. A record's ``created_at`` is fixed when the record is made, so a retry
always carries the same key. (Two records with one ``request_id`` but different
``created_at`` would both be kept: the key is the pair, not the id alone.)

Start and shutdown: the web process starts its writer in the ASGI lifespan
startup, so spool files left by an earlier process are replayed at once, not at
the first call. :meth:`LogWriter.close` writes what is queued, or spools it if
PostgreSQL is down, then stops the thread; the lifespan shutdown runs it
(:func:`close_writer`), after the server stopped taking requests and the gateway
stopped: uvicorn ends a signalled stop by re-raising the signal, so ``atexit``
(where ``close`` is registered too, for other processes) never runs there.

What a hard crash (SIGKILL, OOM kill, power loss) can lose: only records that are
in this process's memory, never anything committed or spooled. That is the
records submitted since the last write began: with PostgreSQL up, those of the
last ``flush_interval`` (1 s), at most ``batch_size`` (1000) unless they arrive
faster than a write takes (a write takes milliseconds and carries up to
10 x ``batch_size`` records); with PostgreSQL unreachable, those submitted while
the writer waits on a connection attempt (at most the connect timeout, 5 s)
plus the batch being spooled. A batch whose COMMIT was sent is either in the
table or retried idempotently; spool files are fsynced before the batch is
forgotten, and every writer replays spool files left by a dead process (at
start and whenever it checks the spool), so nothing committed or spooled is
lost or doubled.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from psycopg import errors as pg_errors
from psycopg import sql

from logs.conf import logs_conf
from logs.models import TABLE

logger = logging.getLogger(__name__)

APPLICATION_NAME = "mcphub-logwriter"
# The columns the writer fills, with their PostgreSQL types (for binary COPY), in LogRecord.as_row order.
_TYPED_COLUMNS = (
    ("created_at", "timestamptz"),
    ("request_id", "uuid"),
    ("server_id", "int8"),
    ("server_slug", "varchar"),
    ("tool", "varchar"),
    ("token_id", "int8"),
    ("token_name", "varchar"),
    ("session_id", "varchar"),
    ("protocol_era", "varchar"),
    ("outcome", "varchar"),
    ("latency_ms", "float8"),
    ("request_bytes", "int4"),
    ("response_bytes", "int4"),
    ("error_code", "int4"),
    ("error", "text"),
)
COLUMNS = tuple(name for name, _type in _TYPED_COLUMNS)
COLUMN_TYPES = tuple(type_ for _name, type_ in _TYPED_COLUMNS)
_INT32 = 2**31 - 1
# Django-only keys of DATABASES[...]["OPTIONS"] that libpq does not know.
_DJANGO_ONLY_OPTIONS = {"isolation_level", "server_side_binding", "pool", "assume_role", "cursor_factory", "context"}


def _now() -> datetime:
    return datetime.now(UTC)


def _text(value: str, max_length: int | None) -> str:
    """Cut to the column's width and drop NUL bytes (PostgreSQL text cannot hold them)."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value[:max_length] if max_length is not None and len(value) > max_length else value


def _int32(value: int) -> int:
    return max(-_INT32, min(int(value), _INT32))


@dataclass(slots=True)
class LogRecord:
    """One request-log entry as handed to the writer (see models.RequestLog for the meaning)."""

    outcome: str
    server_id: int | None = None
    server_slug: str = ""
    tool: str = ""
    token_id: int | None = None
    token_name: str = ""
    session_id: str = ""
    protocol_era: str = ""
    latency_ms: float = 0.0
    request_bytes: int = 0
    response_bytes: int = 0
    error_code: int | None = None
    error: str = ""
    created_at: datetime = field(default_factory=_now)
    request_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def as_row(self) -> tuple[Any, ...]:
        """The values in COLUMNS order, made to fit the columns (length, NUL bytes, int range, types)."""
        return (
            self.created_at,
            self.request_id,
            self.server_id,
            _text(self.server_slug, 100),
            _text(self.tool, 255),
            self.token_id,
            _text(self.token_name, 100),
            _text(self.session_id, 128),
            _text(self.protocol_era, 16),
            _text(self.outcome, 16),
            float(self.latency_ms),
            _int32(self.request_bytes),
            _int32(self.response_bytes),
            None if self.error_code is None else _int32(self.error_code),
            _text(self.error, None),
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["request_id"] = str(self.request_id)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogRecord:
        """A record from a spool line; fields a line lacks (spooled by older code) take their defaults."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["created_at"] = datetime.fromisoformat(values["created_at"])
        values["request_id"] = uuid.UUID(values["request_id"])
        return cls(**values)


@dataclass
class WriterStats:
    """Counters for tests, the benchmark and operators (read without locking: approximate)."""

    submitted: int = 0
    written: int = 0
    flushes_by_size: int = 0
    flushes_by_time: int = 0
    flushes_requested: int = 0
    failures: int = 0
    spooled: int = 0
    replayed: int = 0
    rejected: int = 0
    dropped: int = 0


@dataclass
class _Batch:
    records: list[LogRecord]
    # True once a write was attempted: it may be in the table already, so retry idempotently.
    maybe_written: bool = False


@dataclass
class _Control:
    """A marker in the queue: flush (and maybe stop) once every record queued before it is handled."""

    stop: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    all_written: bool = False


def conninfo_from_settings(alias: str = "default") -> dict[str, Any]:
    """psycopg connection parameters for ``settings.DATABASES[alias]`` (the writer's own connection)."""
    db: Mapping[str, Any] = settings.DATABASES[alias]
    params: dict[str, Any] = {
        key: value
        for key, value in (db.get("OPTIONS") or {}).items()
        if key not in _DJANGO_ONLY_OPTIONS and value not in (None, "")
    }
    for key, setting in (("dbname", "NAME"), ("user", "USER"), ("password", "PASSWORD"), ("host", "HOST")):
        if db.get(setting):
            params[key] = db[setting]
    if db.get("PORT"):
        params["port"] = int(db["PORT"])
    params.setdefault("connect_timeout", 5)
    params["application_name"] = APPLICATION_NAME
    return params


class LogWriter:
    """Batches request-log records into PostgreSQL from a background thread (see the module docstring)."""

    def __init__(
        self,
        conninfo: dict[str, Any] | None = None,
        *,
        table: str = TABLE,
        batch_size: int | None = None,
        flush_interval: float | None = None,
        max_buffer: int | None = None,
        spool_dir: Path | str | None = None,
        max_backoff: float = 5.0,
    ) -> None:
        self.conninfo = dict(conninfo) if conninfo is not None else conninfo_from_settings()
        self.table = table
        config = logs_conf()
        self.batch_size = batch_size or config.writer_batch_size
        self.max_batch = 10 * self.batch_size
        self.flush_interval = flush_interval or config.writer_flush_interval
        self.spool_dir = Path(spool_dir or config.spool_dir)
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.max_backoff = max_backoff
        self.stats = WriterStats()
        self.max_buffer = max_buffer or config.writer_max_buffer
        # A deque, not a queue.Queue: append/popleft are atomic without a lock, so submit() costs
        # well under a microsecond; the event wakes the thread for a first record or a full batch.
        self._records: deque[LogRecord] = deque()
        self._controls: deque[_Control] = deque()
        self._wakeup = threading.Event()
        self._idle = True  # the thread holds no pending records (written by the thread only)
        self._conn: psycopg.Connection[Any] | None = None
        self._backoff = 0.0
        self._retry_at = 0.0  # monotonic time before which PostgreSQL is presumed down
        self._down_since: float | None = None  # monotonic start of the current outage, for its two log lines
        self._spool_pending = True  # check the spool at start: a dead process may have left files
        self._closed = False
        self._last_drop_log = -1e9
        self._close_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="logs-writer", daemon=True)
        self._thread.start()

    # --- caller side ---------------------------------------------------------------

    def submit(self, record: LogRecord) -> bool:
        """Queue one record without waiting; False (and ``stats.dropped``) only if the queue is full."""
        if self._closed:
            raise RuntimeError("LogWriter is closed")
        records = self._records
        if len(records) >= self.max_buffer:
            self.stats.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log >= 10:  # one line per 10 s, not one per record
                self._last_drop_log = now
                logger.error("request-log queue full: records dropped (%d so far)", self.stats.dropped)
            return False
        records.append(record)
        queued = len(records)
        # Wake the thread only to start a batch's timer (it holds nothing) or at a full batch: waking
        # it for every record would make each call pay a thread switch and a GIL hand-over.
        if (queued == 1 and self._idle) or queued == self.batch_size:
            self._wakeup.set()
        self.stats.submitted += 1
        return True

    @property
    def queue_depth(self) -> int:
        """Records submitted and not yet taken by the writer thread."""
        return len(self._records)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Write every record submitted so far; True if all reached PostgreSQL (False: spooled or timed out)."""
        return self._control(_Control(), timeout)

    def close(self, timeout: float | None = 30.0) -> bool:
        """Write (or spool) everything, then stop the thread. Idempotent; also run at exit."""
        with self._close_lock:
            if self._closed:
                return True
            self._closed = True
        written = self._control(_Control(stop=True), timeout)
        self._thread.join(timeout)
        return written

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend pid of the writer's connection (None while disconnected)."""
        conn = self._conn
        return conn.info.backend_pid if conn is not None and not conn.closed else None

    def _control(self, control: _Control, timeout: float | None) -> bool:
        if not self._thread.is_alive():
            return False
        self._controls.append(control)
        self._wakeup.set()
        return control.done.wait(timeout) and control.all_written

    # --- writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        pending: list[LogRecord] = []
        first_at = 0.0
        records, controls = self._records, self._controls
        while True:
            self._idle = not pending  # set before the check below: see submit()
            if not records and not controls:
                self._wakeup.wait(self._wait_time(pending, first_at))
            self._wakeup.clear()  # before draining: a record appended after this sets it again
            control = controls.popleft() if controls else None
            # Under load one COPY and one commit carry up to max_batch records (a commit's fsync costs
            # more than writing 1000 rows); a flush or stop takes everything queued before it.
            limit = len(records) if control is not None else self.max_batch - len(pending)
            if records and not pending:
                first_at = time.monotonic()
            for _ in range(min(limit, len(records))):
                pending.append(records.popleft())
            try:
                if control is not None:
                    self.stats.flushes_requested += 1
                    control.all_written = self._write_all(pending)
                    pending = []
                    control.done.set()
                    if control.stop:
                        self._disconnect()
                        return
                    continue
                if len(pending) >= self.batch_size:
                    self.stats.flushes_by_size += 1
                    self._write(_Batch(pending))
                    pending = []
                elif pending and time.monotonic() - first_at >= self.flush_interval:
                    self.stats.flushes_by_time += 1
                    self._write(_Batch(pending))
                    pending = []
                elif self._spool_pending and time.monotonic() >= self._retry_at:
                    self._replay_spool()
            except Exception:  # never let the thread die: log, spool what we hold, go on
                logger.exception("request-log writer error")
                if pending:
                    self._spool(pending)
                    pending = []
                if control is not None:
                    control.done.set()
                    if control.stop:
                        self._disconnect()
                        return

    def _wait_time(self, pending: list[LogRecord], first_at: float) -> float:
        if pending:
            return max(0.0, first_at + self.flush_interval - time.monotonic())
        if self._spool_pending:
            return max(0.05, self._retry_at - time.monotonic())
        return 5.0

    def _write_all(self, records: list[LogRecord]) -> bool:
        """Flush: write everything held (in batches), then any spool; True if nothing is left on disk."""
        ok = True
        for start in range(0, len(records), self.max_batch):
            ok = self._write(_Batch(records[start : start + self.max_batch])) and ok
        if self._spool_pending and time.monotonic() >= self._retry_at:
            self._replay_spool()
        return ok and not self._spool_pending

    def _write(self, batch: _Batch) -> bool:
        """Write one batch: try, retry once on a fresh connection, else spool. True if in PostgreSQL."""
        if time.monotonic() < self._retry_at:  # presumed down: do not stall on connect timeouts
            self._spool(batch.records)
            return False
        for attempt in (1, 2):
            # Retry at once only if an open connection broke; a failed connect would just fail again.
            retry_allowed = attempt == 1 and self._conn is not None and not self._conn.closed
            try:
                self._insert(batch)
            except _RowError as error:
                self._write_rows_one_by_one(batch.records, error)
                return True
            except (psycopg.Error, OSError) as error:
                self.stats.failures += 1
                batch.maybe_written = True
                self._disconnect()
                if not retry_allowed:
                    self._mark_down(error)
                    self._spool(batch.records)
                    return False
            else:
                self.stats.written += len(batch.records)
                self._mark_up()
                return True
        return False  # pragma: no cover

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(**self.conninfo, autocommit=True)
            # The staging table for idempotent writes: ids come from the real table's sequence.
            self._conn.execute(
                sql.SQL(
                    "CREATE TEMP TABLE IF NOT EXISTS logs_writer_incoming ON COMMIT DELETE ROWS AS "
                    "SELECT {cols} FROM {table} WITH NO DATA"
                ).format(cols=_columns(), table=sql.Identifier(self.table))
            )
        return self._conn

    def _insert(self, batch: _Batch) -> None:
        conn = self._connection()
        cols, table = _columns(), sql.Identifier(self.table)
        if not batch.maybe_written:
            try:
                with conn.transaction(), conn.cursor() as cur:
                    _copy(cur, sql.SQL("COPY {} ({}) FROM STDIN").format(table, cols), batch.records)
                return
            except pg_errors.UniqueViolation:
                pass  # a record already written (resubmitted): fall through to the idempotent path
            except (pg_errors.DataError, pg_errors.IntegrityError) as error:
                raise _RowError(error) from error
        try:
            with conn.transaction(), conn.cursor() as cur:
                _copy(cur, sql.SQL("COPY logs_writer_incoming ({}) FROM STDIN").format(cols), batch.records)
                cur.execute(
                    sql.SQL(
                        "INSERT INTO {table} ({cols}) SELECT {cols} FROM logs_writer_incoming "
                        "ON CONFLICT (request_id, created_at) DO NOTHING"
                    ).format(table=table, cols=cols)
                )
        except (pg_errors.DataError, pg_errors.IntegrityError) as error:
            raise _RowError(error) from error

    def _write_rows_one_by_one(self, records: list[LogRecord], error: Exception) -> None:
        """A batch failed on its data: write the good rows, set the bad ones aside in rejected-*.jsonl."""
        logger.error("request-log batch rejected (%s); writing its %d rows one by one", error, len(records))
        conn = self._connection()
        statement = sql.SQL(
            "INSERT INTO {table} ({cols}) VALUES ({values}) ON CONFLICT (request_id, created_at) DO NOTHING"
        ).format(
            table=sql.Identifier(self.table),
            cols=_columns(),
            values=sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS)),
        )
        for record in records:
            try:
                with conn.transaction():
                    conn.execute(statement, record.as_row())
                self.stats.written += 1
            except (pg_errors.DataError, pg_errors.IntegrityError) as row_error:
                self.stats.rejected += 1
                logger.error("request-log record %s rejected: %s", record.request_id, row_error)
                with open(self.spool_dir / f"rejected-{os.getpid()}.jsonl", "a") as handle:
                    handle.write(json.dumps(record.to_json()) + "\n")

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _mark_down(self, error: Exception) -> None:
        # One warning per outage, not one per batch: the spool keeps the records meanwhile.
        if self._down_since is None:
            self._down_since = time.monotonic()
            logger.warning("request-log: PostgreSQL unavailable (%s); spooling records until it is back", error)
        self._backoff = min(self.max_backoff, max(0.5, self._backoff * 2))
        self._retry_at = time.monotonic() + self._backoff

    def _mark_up(self) -> None:
        if self._down_since is not None:
            logger.warning(
                "request-log: writing to PostgreSQL again after %.1f s; replaying the spool",
                time.monotonic() - self._down_since,
            )
            self._down_since = None
        self._backoff = 0.0
        self._retry_at = 0.0

    # --- spool -----------------------------------------------------------------------

    def _spool(self, records: list[LogRecord]) -> None:
        """Append-free, crash-safe: write a temporary file, fsync, rename into place."""
        if not records:
            return
        name = f"{os.getpid()}-{time.time_ns()}-{uuid.uuid4().hex[:8]}.jsonl"
        tmp = self.spool_dir / (name + ".tmp")
        with open(tmp, "w") as handle:
            for record in records:
                handle.write(json.dumps(record.to_json()) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        tmp.rename(self.spool_dir / name)
        _fsync_dir(self.spool_dir)
        self.stats.spooled += len(records)
        self._spool_pending = True

    def _replay_spool(self) -> None:
        """Write every spool file we can claim (ours, or left by a dead process), then delete it."""
        for path in self._claimable_spool_files():
            claimed = path.with_name(_base_name(path.name) + f".claimed-{os.getpid()}")
            try:
                path.rename(claimed)
            except FileNotFoundError:
                continue  # another writer took it
            records = list(_read_spool(claimed))
            for start in range(0, len(records), self.max_batch):
                batch = _Batch(records[start : start + self.max_batch], maybe_written=True)
                if not self._write_replayed(batch):
                    claimed.rename(path.with_name(_base_name(path.name)))  # give it back for the next try
                    return
            claimed.unlink()
            _fsync_dir(self.spool_dir)
            self.stats.replayed += len(records)
            logger.info("request-log: replayed %d spooled records from %s", len(records), path.name)
        self._spool_pending = any(self._claimable_spool_files())

    def _write_replayed(self, batch: _Batch) -> bool:
        try:
            self._insert(batch)
        except _RowError as error:
            self._write_rows_one_by_one(batch.records, error)
        except (psycopg.Error, OSError) as error:
            self.stats.failures += 1
            self._disconnect()
            self._mark_down(error)
            return False
        else:
            self.stats.written += len(batch.records)
            self._mark_up()
        return True

    def _claimable_spool_files(self) -> list[Path]:
        files = []
        for path in sorted(self.spool_dir.iterdir()):
            name = path.name
            if name.startswith("rejected-") or ".jsonl" not in name:
                continue
            if name.endswith(".jsonl"):
                files.append(path)
            elif (name.endswith(".tmp") or ".claimed-" in name) and not _pid_alive(_owner_pid(name)):
                files.append(path)  # left by a process that died while writing or replaying it
        return files


class _RowError(Exception):
    """A batch failed because of its data (not the connection): retrying it whole would fail again."""


def _columns() -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, COLUMNS))


def _copy(cur: psycopg.Cursor[Any], statement: sql.Composed, records: Iterable[LogRecord]) -> None:
    with cur.copy(statement + sql.SQL(" (FORMAT BINARY)")) as copy:
        copy.set_types(COLUMN_TYPES)
        for record in records:
            copy.write_row(record.as_row())


def _read_spool(path: Path) -> Iterator[LogRecord]:
    with open(path) as handle:
        for line in handle:
            try:
                yield LogRecord.from_json(json.loads(line))
            except (ValueError, KeyError, TypeError):
                logger.warning("request-log: skipping a torn line in %s", path.name)


def _base_name(name: str) -> str:
    return name.split(".jsonl", 1)[0] + ".jsonl"


def _owner_pid(name: str) -> int:
    if ".claimed-" in name:
        return int(name.rsplit("-", 1)[1])
    return int(name.split("-", 1)[0])


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- the process-wide writer -----------------------------------------------------------

_writer: LogWriter | None = None
_writer_lock = threading.Lock()


def current_writer() -> LogWriter | None:
    """The process's writer if one was started (for metrics: reading must not start one)."""
    return _writer


def get_writer() -> LogWriter:
    """The process's writer, started on first use and closed at exit."""
    global _writer
    if _writer is None:
        with _writer_lock:
            if _writer is None:
                _writer = LogWriter()
                atexit.register(_writer.close)
    return _writer


def close_writer(timeout: float | None = 30.0) -> bool:
    """Write (or spool) what this process queued and stop its writer: a server's shutdown hook.

    uvicorn ends a signalled stop by re-raising the signal, which kills the process
    without running ``atexit``; its lifespan shutdown calls this instead. True if
    everything reached PostgreSQL (or nothing was started); a later ``submit`` starts
    a new writer.
    """
    global _writer
    with _writer_lock:
        writer, _writer = _writer, None
    if writer is None:
        return True
    atexit.unregister(writer.close)
    return writer.close(timeout)


def submit(record: LogRecord) -> bool:
    """Hand one record to the process's writer (never waits for the database)."""
    return get_writer().submit(record)


def _forget_after_fork() -> None:
    # A forked child (e.g. a Celery prefork worker) has no writer thread: it starts its own on first use.
    global _writer, _writer_lock
    _writer = None
    _writer_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
