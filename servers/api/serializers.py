"""Serializers of /api/servers/ and /api/tools/. Secrets (env and header values) are never shown."""

from __future__ import annotations

from typing import Any

from django.db import models
from rest_framework import serializers

from servers.models import McpServer, Tool, slug_validator
from servers.secrets import MASK, mask_values, unmask_values

READ_ONLY_SERVER_FIELDS = (
    "id",
    "era",
    "protocol_version",
    "status",
    "status_changed_at",
    "last_checked_at",
    "last_discovered_at",
    "discovery_error",
    "config_version",
    "created_at",
    "updated_at",
)


class StrictCharField(serializers.CharField):
    """A string as sent: DRF's CharField would store the number 1 as "1"; the rest is the model's to check."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


def _string_list(help_text: str) -> serializers.ListField:
    return serializers.ListField(child=StrictCharField(trim_whitespace=False), required=False, help_text=help_text)


def _secret_map(help_text: str) -> serializers.DictField:
    return serializers.DictField(
        child=StrictCharField(allow_blank=True, trim_whitespace=False), required=False, help_text=help_text
    )


class StrictBooleanField(serializers.BooleanField):
    """JSON ``true`` or ``false`` only, as the schema says: DRF's also takes 0, 1, "yes", "off"..."""

    def to_internal_value(self, data: object) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class McpServerSerializer(serializers.ModelSerializer):
    """A registered server. ``env`` and ``headers`` values read as the mask; sending the mask back keeps them."""

    serializer_field_mapping = {**serializers.ModelSerializer.serializer_field_mapping}
    serializer_field_mapping[models.BooleanField] = StrictBooleanField

    args = _string_list("Arguments of the stdio command.")
    tags = _string_list("Free-form labels.")
    tool_allowlist = _string_list('Glob patterns, e.g. ["get_*"]; empty: all tools.')
    tool_denylist = _string_list("Glob patterns of tools to hide.")
    replica_urls = _string_list("HTTP: more URLs of the same server; one pool instance per URL.")
    env = _secret_map(f"Environment of the stdio process; values read as {MASK!r}, and {MASK!r} keeps a value.")
    headers = _secret_map(f"HTTP headers; values read as {MASK!r}, and {MASK!r} keeps a value.")

    class Meta:
        model = McpServer
        fields = (
            "id",
            "name",
            "slug",
            "description",
            "transport",
            "command",
            "args",
            "env",
            "cwd",
            "url",
            "headers",
            "enabled",
            "tags",
            "connect_timeout",
            "call_timeout",
            "tool_allowlist",
            "tool_denylist",
            "max_concurrent_calls",
            "health_check_interval",
            "idle_timeout",
            "min_instances",
            "max_instances",
            "balancing_policy",
            "instance_max_concurrent_calls",
            "replica_urls",
            *READ_ONLY_SERVER_FIELDS[1:],
        )
        read_only_fields = READ_ONLY_SERVER_FIELDS

    def to_representation(self, instance: McpServer) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["env"] = mask_values(instance.env or {})
        data["headers"] = mask_values(instance.headers or {})
        return data

    def validate_env(self, value: dict[str, str]) -> dict[str, str]:
        return self._unmask(value, self.instance.env if self.instance else None)

    def validate_headers(self, value: dict[str, str]) -> dict[str, str]:
        return self._unmask(value, self.instance.headers if self.instance else None)

    @staticmethod
    def _unmask(value: dict[str, str], stored: dict[str, str] | None) -> dict[str, str]:
        kept = [key for key, item in value.items() if item == MASK and key not in (stored or {})]
        if kept:
            raise serializers.ValidationError(f"No stored value to keep for {', '.join(sorted(kept))}: send the value.")
        return unmask_values(value, stored or {})


class ToolSerializer(serializers.ModelSerializer):
    """A tool discovered on a server. Only ``enabled`` can be changed (by staff)."""

    server = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Tool
        fields = (
            "id",
            "server",
            "name",
            "title",
            "description",
            "enabled",
            "input_schema",
            "output_schema",
            "annotations",
            "first_seen",
            "last_seen",
        )
        read_only_fields = fields


class ToolEnabledSerializer(serializers.Serializer):
    """The body of ``PATCH /api/tools/<id>/``."""

    enabled = StrictBooleanField(help_text="Disabled tools are hidden from /mcp.")


class ToolQuerySerializer(serializers.Serializer):
    """The query parameters of ``GET /api/tools/``."""

    server = serializers.CharField(
        required=False, max_length=30, validators=[slug_validator], help_text="Only this server's tools (slug)."
    )
