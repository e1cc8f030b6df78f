"""Reachability checks of the hub's backing services, for /healthz."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection
from django_redis import get_redis_connection


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    latency_ms: float
    error: str = ""

    def as_dict(self) -> dict[str, object]:
        result: dict[str, object] = {"ok": self.ok, "latency_ms": round(self.latency_ms, 2)}
        if self.error:
            result["error"] = self.error
        return result


def _timed(probe: Callable[[], object]) -> CheckResult:
    started = time.perf_counter()
    try:
        probe()
    except Exception as exc:  # any failure means "not reachable"; the message says why
        return CheckResult(False, (time.perf_counter() - started) * 1000, f"{type(exc).__name__}: {exc}".strip())
    return CheckResult(True, (time.perf_counter() - started) * 1000)


def _query_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_database() -> CheckResult:
    result = _timed(_query_database)
    if not result.ok:
        # A broken connection must not be reused by the next request of this thread.
        connection.close()
    return result


def check_redis() -> CheckResult:
    return _timed(lambda: get_redis_connection("default").ping())


def check_all() -> dict[str, CheckResult]:
    return {"database": check_database(), "redis": check_redis()}
