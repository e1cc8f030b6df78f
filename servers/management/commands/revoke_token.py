"""`python manage.py revoke_token NAME`: the token stops working; its row stays for history."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from servers import services


class Command(BaseCommand):
    help = "Revoke the access token with this name (list them with list_tokens). Exits 1 if there is none."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            count = services.revoke_token(options["name"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        what = f"Token {options['name']!r}" if count == 1 else f"{count} tokens named {options['name']!r}"
        self.stdout.write(f"{what} revoked.")
