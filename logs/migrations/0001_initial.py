"""The partitioned request-log table.

The database gets a table partitioned by month with a composite primary key
(PostgreSQL requires the partition key in every unique index); Django's state
gets a plain model with a single-column ``id`` primary key so the ORM and the
admin work. The monthly partitions themselves are created by
``logs.partitions.ensure_partitions`` (run after every ``migrate``).
"""

import uuid

import django.utils.timezone
from django.db import migrations, models

CREATE_SQL = """
CREATE TABLE logs_requestlog (
    id bigserial NOT NULL,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    request_id uuid NOT NULL DEFAULT gen_random_uuid(),
    server_id bigint NULL,
    server_slug varchar(100) NOT NULL DEFAULT '',
    tool varchar(255) NOT NULL DEFAULT '',
    token_id bigint NULL,
    session_id varchar(128) NOT NULL DEFAULT '',
    protocol_era varchar(16) NOT NULL DEFAULT '',
    outcome varchar(16) NOT NULL,
    latency_ms double precision NOT NULL DEFAULT 0,
    request_bytes integer NOT NULL DEFAULT 0,
    response_bytes integer NOT NULL DEFAULT 0,
    error_code integer NULL,
    error text NOT NULL DEFAULT '',
    CONSTRAINT logs_requestlog_pkey PRIMARY KEY (id, created_at),
    CONSTRAINT logs_rl_request_id_created_uniq UNIQUE (request_id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE logs_requestlog_default PARTITION OF logs_requestlog DEFAULT;
CREATE INDEX logs_rl_created_at_idx ON logs_requestlog (created_at);
CREATE INDEX logs_rl_server_created_idx ON logs_requestlog (server_id, created_at);
CREATE INDEX logs_rl_outcome_created_idx ON logs_requestlog (outcome, created_at);
CREATE INDEX logs_rl_tool_created_idx ON logs_requestlog (tool, created_at);
"""

DROP_SQL = "DROP TABLE logs_requestlog CASCADE;"


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(CREATE_SQL, DROP_SQL)],
            state_operations=[
                migrations.CreateModel(
                    name="RequestLog",
                    fields=[
                        ("id", models.BigAutoField(primary_key=True, serialize=False)),
                        (
                            "created_at",
                            models.DateTimeField(
                                default=django.utils.timezone.now,
                                help_text="When the call started; the partition key.",
                            ),
                        ),
                        ("request_id", models.UUIDField(default=uuid.uuid4, editable=False)),
                        (
                            "server_id",
                            models.BigIntegerField(
                                blank=True, help_text="servers.Server id; no foreign key.", null=True
                            ),
                        ),
                        ("server_slug", models.CharField(blank=True, default="", max_length=100)),
                        (
                            "tool",
                            models.CharField(
                                blank=True, default="", help_text="Tool name, else the JSON-RPC method.", max_length=255
                            ),
                        ),
                        ("token_id", models.BigIntegerField(blank=True, null=True)),
                        ("session_id", models.CharField(blank=True, default="", max_length=128)),
                        (
                            "protocol_era",
                            models.CharField(
                                blank=True,
                                choices=[
                                    ("stateless", "2026-07-28 (stateless)"),
                                    ("handshake", "handshake (2025-11-25 and older)"),
                                ],
                                default="",
                                max_length=16,
                            ),
                        ),
                        (
                            "outcome",
                            models.CharField(
                                choices=[
                                    ("ok", "ok"),
                                    ("tool_error", "tool error"),
                                    ("protocol_error", "protocol error"),
                                    ("timeout", "timeout"),
                                    ("upstream_down", "upstream down"),
                                    ("denied", "denied"),
                                ],
                                max_length=16,
                            ),
                        ),
                        ("latency_ms", models.FloatField(default=0.0)),
                        ("request_bytes", models.IntegerField(default=0)),
                        ("response_bytes", models.IntegerField(default=0)),
                        (
                            "error_code",
                            models.IntegerField(blank=True, help_text="JSON-RPC error code, if any.", null=True),
                        ),
                        ("error", models.TextField(blank=True, default="")),
                    ],
                    options={
                        "db_table": "logs_requestlog",
                        "ordering": ("-created_at", "-id"),
                        "get_latest_by": "created_at",
                        "indexes": [
                            models.Index(fields=["created_at"], name="logs_rl_created_at_idx"),
                            models.Index(fields=["server_id", "created_at"], name="logs_rl_server_created_idx"),
                            models.Index(fields=["outcome", "created_at"], name="logs_rl_outcome_created_idx"),
                            models.Index(fields=["tool", "created_at"], name="logs_rl_tool_created_idx"),
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("request_id", "created_at"), name="logs_rl_request_id_created_uniq"
                            )
                        ],
                    },
                ),
            ],
        ),
    ]
