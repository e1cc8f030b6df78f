"""`python manage.py list_tokens [--active]`: every access token, never its secret (only the hint)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Prefetch
from django.utils import timezone

from servers.models import AccessToken, McpServer

COLUMNS = ("name", "hint", "state", "servers", "expires", "last used", "created")


def _when(moment: datetime | None, empty: str) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else empty


def token_row(token: AccessToken) -> tuple[str, ...]:
    """One token as the cells of the table (the servers prefetched)."""
    slugs = ", ".join(server.slug for server in token.servers.all()) or "all"
    return (
        token.name,
        token.hint + "…",
        token.state if token.revoked_at is None else f"revoked {_when(token.revoked_at, '')}",
        slugs,
        _when(token.expires_at, "never"),
        _when(token.last_used_at, "never"),
        _when(token.created_at, ""),
    )


class Command(BaseCommand):
    help = "List access tokens: name, hint (first characters), state, servers, expiry, last use. Never the secret."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--active", action="store_true", help="only tokens that authenticate now")

    def handle(self, *args: Any, **options: Any) -> None:
        tokens = AccessToken.objects.active() if options["active"] else AccessToken.objects.all()
        servers = Prefetch("servers", queryset=McpServer.objects.order_by("slug").only("slug"))
        rows = [COLUMNS, *(token_row(token) for token in tokens.prefetch_related(servers))]
        widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if len(rows) == 1:
            self.stdout.write("No tokens: python manage.py create_token NAME")
