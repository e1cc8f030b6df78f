"""Helpers shared by the status, check, API and breaker tests."""

from __future__ import annotations

import base64
import json
import sys
from datetime import datetime

import redis
from django.conf import settings
from django.utils import timezone

from servers.models import McpServer
from tests.conftest import FIXTURE_SERVER


def stdio_server(slug: str, *flags: str, **fields: object) -> McpServer:
    """A registered server running our SDK fixture over stdio (not discovered)."""
    return McpServer.objects.create(
        name=slug, slug=slug, command=sys.executable, args=[str(FIXTURE_SERVER), *flags], **fields
    )


def set_status(server: McpServer, status: str, changed_at: datetime | None = None) -> None:
    McpServer.objects.filter(pk=server.pk).update(status=status, status_changed_at=changed_at or timezone.now())


def queued_tasks() -> list[tuple[str, list, dict]]:
    """(task name, positional args, headers) of the messages waiting in the broker's default queue."""
    queue = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    messages = [json.loads(raw) for raw in queue.lrange("celery", 0, -1)]
    return [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0], m["headers"]) for m in messages]
