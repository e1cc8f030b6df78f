from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate


class LogsConfig(AppConfig):
    name = "logs"
    verbose_name = "Request logs"

    def ready(self) -> None:
        post_migrate.connect(ensure_partitions_after_migrate, sender=self)


def ensure_partitions_after_migrate(using: str = "default", **kwargs: object) -> None:
    """A fresh install (or a test database) gets this month's and the next months' partitions."""
    # Here, not at the top: Django imports apps.py before the app registry is ready, and models need it.
    from logs.models import TABLE
    from logs.partitions import ensure_partitions

    if TABLE in connections[using].introspection.table_names(include_views=False):
        ensure_partitions(using=using)
