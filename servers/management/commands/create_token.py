"""`python manage.py create_token NAME [--server SLUG ...] [--expires-days N]`: the token is the last line."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from servers import services


class Command(BaseCommand):
    help = "Create an access token for /mcp and /api/. The secret is printed once, as the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--server", action="append", default=[], metavar="SLUG", help="limit to this server")
        parser.add_argument("--expires-days", type=int, default=None, help="expire after this many days")

    def handle(self, *args: Any, **options: Any) -> None:
        expires = None
        if options["expires_days"] is not None:
            if options["expires_days"] <= 0:
                raise CommandError("--expires-days must be positive")
            expires = timezone.now() + timedelta(days=options["expires_days"])
        try:
            token, secret = services.create_token(options["name"], options["server"], expires)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        scope = ", ".join(options["server"]) or "all servers"
        self.stdout.write(f"Token {token.name!r} created for {scope}. Store it now: it is not shown again.")
        self.stdout.write(secret)
