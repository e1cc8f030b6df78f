#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys

from django.core.management import execute_from_command_line

from mcphub import embedded


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcphub.settings")
    embedded.start_unconfigured()  # the embedded PostgreSQL/Redis, unless DATABASE_URL/REDIS_URL name others
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
