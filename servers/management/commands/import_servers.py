"""`manage.py import_servers FILE`: import an mcpServers JSON file (Claude Desktop, Cursor, VS Code)."""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from servers import mcp_json


class Command(BaseCommand):
    help = (
        'Import servers from a {"mcpServers": {...}} JSON file ("-" reads stdin). Updates by slug, creates '
        "otherwise; bad entries are rejected with their reason on stderr, the good ones kept. Exits 0 once the "
        "file parsed, even with rejections."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", help='path of the JSON file, or "-" for stdin')

    def handle(self, *args: Any, **options: Any) -> None:
        text = self._read(options["file"])
        try:
            report = mcp_json.import_text(text)
        except mcp_json.McpJsonError as exc:
            raise CommandError(f"{options['file']}: {exc}") from exc
        for slug in report.created:
            self.stdout.write(f"created: {slug}")
        for slug in report.updated:
            self.stdout.write(f"updated: {slug}")
        for slug, reason in report.rejected:
            self.stderr.write(f"rejected: {slug}: {reason}")
        self.stdout.write(report.summary())

    @staticmethod
    def _read(name: str) -> bytes:
        if name == "-":
            return sys.stdin.buffer.read()
        try:
            return Path(name).read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {name}: {exc.strerror}") from exc
