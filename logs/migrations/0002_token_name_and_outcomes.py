"""The token's name on each row, and the outcomes ``overloaded`` and ``connection_lost``.

The column is added by SQL with a database default of ``''``, like the columns of
0001: adding a column with a constant default to a partitioned table is a catalog
change (no rewrite of any partition), and a writer still running the old code
(which copies no ``token_name``) keeps working during a deploy. Outcomes are
choices only: nothing changes in the database.
"""

from django.db import migrations, models

ADD_SQL = "ALTER TABLE logs_requestlog ADD COLUMN token_name varchar(100) NOT NULL DEFAULT '';"
DROP_SQL = "ALTER TABLE logs_requestlog DROP COLUMN token_name;"


class Migration(migrations.Migration):
    dependencies = [("logs", "0001_initial")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(ADD_SQL, DROP_SQL)],
            state_operations=[
                migrations.AddField(
                    model_name="requestlog",
                    name="token_name",
                    field=models.CharField(
                        blank=True, default="", help_text="The token's name at the call.", max_length=100
                    ),
                ),
            ],
        ),
        migrations.AlterField(
            model_name="requestlog",
            name="token_id",
            field=models.BigIntegerField(blank=True, help_text="servers.AccessToken id; no foreign key.", null=True),
        ),
        migrations.AlterField(
            model_name="requestlog",
            name="outcome",
            field=models.CharField(
                choices=[
                    ("ok", "ok"),
                    ("tool_error", "tool error"),
                    ("protocol_error", "protocol error"),
                    ("timeout", "timeout"),
                    ("overloaded", "overloaded"),
                    ("connection_lost", "connection lost"),
                    ("upstream_down", "upstream down"),
                    ("denied", "denied"),
                ],
                max_length=16,
            ),
        ),
    ]
