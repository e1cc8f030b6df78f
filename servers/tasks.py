"""Celery tasks of the registry."""

from __future__ import annotations

from celery import shared_task

from servers.discovery import discover
from servers.models import McpServer


@shared_task(ignore_result=True)
def discover_server(server_id: int) -> None:
    """List and store the server's tools, resources and prompts (after a save, an enable, a recovery, a refresh)."""
    server = McpServer.objects.filter(pk=server_id, enabled=True).first()
    if server is not None:
        discover(server)
