"""``python manage.py logs_partitions --ensure | --drop | --list``: request-log partition maintenance."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.template.defaultfilters import filesizeformat

from logs import partitions
from logs.conf import logs_conf


class Command(BaseCommand):
    help = "Create the coming months' request-log partitions, drop those past retention, or list them."

    def add_arguments(self, parser: CommandParser) -> None:
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--ensure", action="store_true", help="create this month's and the next months' partitions")
        action.add_argument("--drop", action="store_true", help="detach and drop months older than the retention")
        action.add_argument("--list", action="store_true", help="list partitions with bounds, row estimates, sizes")
        parser.add_argument("--months-ahead", type=int, help="with --ensure (default: LOGS_MONTHS_AHEAD, 3)")
        parser.add_argument("--older-than-months", type=int, help="with --drop (default: LOGS_RETENTION_MONTHS, 6)")
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        config = logs_conf()
        using = options["database"]
        if options["ensure"]:
            months_ahead = options["months_ahead"] if options["months_ahead"] is not None else config.months_ahead
            created = partitions.ensure_partitions(months_ahead=int(months_ahead), using=using)
            self.stdout.write(f"created {len(created)} partition(s): {', '.join(created) or '-'}")
        elif options["drop"]:
            months = options["older_than_months"]
            months = int(months if months is not None else config.retention_months)
            partitions.ensure_partitions(months_ahead=config.months_ahead, using=using)  # drain DEFAULT
            dropped = partitions.drop_partitions(older_than_months=months, using=using)
            cutoff = partitions.retention_cutoff(months)
            self.stdout.write(
                f"dropped {len(dropped)} partition(s) ending before {cutoff:%Y-%m-%d}: {', '.join(dropped) or '-'}"
            )
        else:
            self.stdout.write(f"{'partition':<32} {'from':<17} {'to':<17} {'rows (est.)':>12} {'size':>10}")
            for part in partitions.list_partitions(using=using):
                lower = "DEFAULT" if part.is_default else f"{part.lower:%Y-%m-%d %H:%M}" if part.lower else "-"
                upper = "" if part.is_default else f"{part.upper:%Y-%m-%d %H:%M}" if part.upper else "-"
                self.stdout.write(
                    f"{part.name:<32} {lower:<17} {upper:<17} {part.estimated_rows:>12} "
                    f"{filesizeformat(part.size_bytes):>10}"
                )
