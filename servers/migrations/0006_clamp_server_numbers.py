"""Bring numbers stored before 0004's bounds into them, so the hub can use every existing server.

The bounds are copied here (not imported): this migration must keep doing what it did when models change.
NaN and infinity compare greater than every number in PostgreSQL, so they take the upper bound.
"""

from django.db import migrations

BOUNDS = {
    "connect_timeout": (0.1, 300),
    "call_timeout": (0.1, 3600),
    "max_concurrent_calls": (1, 1000),
    "health_check_interval": (1, 86400),
    "idle_timeout": (0, 604800),
    "instance_max_concurrent_calls": (0, 1000),
}


def clamp(apps, schema_editor):
    servers = apps.get_model("servers", "McpServer").objects
    for field, (low, high) in BOUNDS.items():
        servers.filter(**{f"{field}__gt": high}).update(**{field: high})
        servers.filter(**{f"{field}__lt": low}).update(**{field: low})


class Migration(migrations.Migration):
    dependencies = [
        ("servers", "0005_access_token_revoked_at"),
    ]

    operations = [migrations.RunPython(clamp, migrations.RunPython.noop)]
