"""Serializers of the request-log API: the rows, and the query parameters (validated: 400 with the reason)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from logs.models import Outcome, ProtocolEra, RequestLog
from logs.services import WindowError, resolve_window


class RequestLogSerializer(serializers.ModelSerializer):
    # Declared for the schema: a read-only field generated from the model would not list the blank choice.
    protocol_era = serializers.ChoiceField(
        choices=ProtocolEra.choices, allow_blank=True, read_only=True, help_text="Empty when not known."
    )

    class Meta:
        model = RequestLog
        fields = (
            "id",
            "request_id",
            "created_at",
            "server_id",
            "server_slug",
            "tool",
            "token_id",
            "token_name",
            "session_id",
            "protocol_era",
            "outcome",
            "latency_ms",
            "request_bytes",
            "response_bytes",
            "error_code",
            "error",
        )
        read_only_fields = fields


class RequestLogFilterSerializer(serializers.Serializer):
    """Query parameters of ``GET /api/logs/``. Times are ISO 8601; without a zone they are UTC."""

    since = serializers.DateTimeField(required=False, help_text="Start of the window (inclusive); default until-24h.")
    until = serializers.DateTimeField(required=False, help_text="End of the window (exclusive); default now.")
    server = serializers.CharField(required=False, max_length=100, help_text="Server slug.")
    server_id = serializers.IntegerField(required=False, min_value=1, help_text="Server id.")
    tool = serializers.CharField(required=False, max_length=255, help_text="Tool name (or JSON-RPC method).")
    outcome = serializers.ChoiceField(required=False, choices=Outcome.choices)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            attrs["since"], attrs["until"] = resolve_window(attrs.get("since"), attrs.get("until"))
        except WindowError as error:
            raise serializers.ValidationError({"since": [str(error)]}) from error
        return attrs
