"""servers.blocking.run_blocking: blocking Django code off the event loop, its thread's connection closed after."""

from __future__ import annotations

import threading

import anyio
import pytest
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from servers.blocking import run_blocking
from servers.models import McpServer


@pytest.mark.django_db(transaction=True)
def test_runs_in_another_thread_and_closes_its_connection() -> None:
    def count() -> tuple[int, int, BaseDatabaseWrapper]:
        return McpServer.objects.count(), threading.get_ident(), connections["default"]

    found, thread, wrapper = anyio.run(run_blocking, count)

    assert found == 0
    assert thread != threading.get_ident()
    assert wrapper is not connections["default"] and wrapper.connection is None  # closed after the call


@pytest.mark.django_db(transaction=True)
def test_an_error_reaches_the_caller_and_the_connection_is_closed_all_the_same() -> None:
    wrappers: list[BaseDatabaseWrapper] = []

    def fail() -> None:
        McpServer.objects.count()
        wrappers.append(connections["default"])
        raise LookupError("no such thing")

    with pytest.raises(LookupError, match="no such thing"):
        anyio.run(run_blocking, fail)
    assert wrappers[0].connection is None
