"""`manage.py export_servers`: every server as mcpServers JSON (secret values masked unless asked)."""

from __future__ import annotations

import os
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from servers import mcp_json


class Command(BaseCommand):
    help = (
        'Export every server as {"mcpServers": {...}} JSON, the format of Claude Desktop, Cursor and VS Code. '
        "Env and header values are masked (********) unless --show-secrets; importing a mask keeps the stored value."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--show-secrets", action="store_true", help="write env and header values in clear")
        parser.add_argument(
            "--hub-fields",
            action="store_true",
            help="also write the hub's own keys (name, description, enabled, tags, timeouts, tool lists)",
        )
        parser.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        text = mcp_json.dumps(
            mcp_json.export_servers(show_secrets=options["show_secrets"], hub_fields=options["hub_fields"])
        )
        if not options["output"]:
            self.stdout.write(text, ending="")
            return
        try:
            # Owner-only: the file may hold secrets.
            fd = os.open(options["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise CommandError(f"cannot write {options['output']}: {exc.strerror}") from exc
