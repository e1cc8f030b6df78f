"""Create the `admin` superuser if missing (run by `make run` on every start)."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from mcphub.embedded import var_dir

ADMIN_USERNAME = "admin"


class Command(BaseCommand):
    help = "Ensure the admin user exists. Password: MCPHUB_ADMIN_PASSWORD, else generated once and kept in var/."

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        given = os.environ.get("MCPHUB_ADMIN_PASSWORD")
        user = user_model.objects.filter(username=ADMIN_USERNAME).first()
        if user is not None:
            if given and not user.check_password(given):
                user.set_password(given)
                user.save(update_fields=["password"])
                self.stdout.write("Admin password set from MCPHUB_ADMIN_PASSWORD.")
            return
        password = given or self._generated_password()
        user_model.objects.create_superuser(ADMIN_USERNAME, email="", password=password)
        if given:
            self.stdout.write("Admin user 'admin' created with the password from MCPHUB_ADMIN_PASSWORD.")
        else:
            self.stdout.write(
                f"Admin user 'admin' created. Password: {password}\n"
                f"(shown once; kept in {var_dir() / 'admin_password'})"
            )

    def _generated_password(self) -> str:
        path = var_dir() / "admin_password"
        password = secrets.token_urlsafe(16)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        return password
