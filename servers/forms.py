"""Admin forms of the registry: JSON-edited lists, masked secrets, the mcpServers upload."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from servers.models import McpServer
from servers.secrets import MASK, mask_values, unmask_values
from servers.validators import string_mapping

JSON_TEXTAREA = forms.Textarea(attrs={"rows": 3, "cols": 80, "class": "vLargeTextField", "spellcheck": "false"})


class StringListField(forms.JSONField):
    """A JSON list of strings, e.g. ``["--port", "8080"]``; empty input means ``[]``."""

    default_error_messages = {"invalid": 'Enter valid JSON, e.g. ["--port", "8080"].'}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", JSON_TEXTAREA)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        # What the list may hold is the model field's validator's to say (servers.validators).
        value = super().to_python(value)
        return [] if value in (None, "") else value


class SecretMappingField(forms.JSONField):
    """A JSON object of strings whose stored values are shown as the mask, never in clear."""

    default_error_messages = {"invalid": 'Enter a valid JSON object, e.g. {"API_KEY": "..."}.'}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", JSON_TEXTAREA)
        kwargs.setdefault(
            "help_text",
            f"A JSON object. Stored values are shown as {MASK}: leave a mask as it is to keep the stored value.",
        )
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        # Its shape is checked here (unmasking needs an object); names and values by the model's validator.
        value = super().to_python(value)
        return {} if value in (None, "") else string_mapping(value)


def unmask_or_error(submitted: dict[str, str], stored: dict[str, str]) -> dict[str, str]:
    """`unmask_values`, refusing a mask for a name that has no stored value (it would become empty)."""
    missing = sorted(key for key, value in submitted.items() if value == MASK and key not in stored)
    if missing:
        raise ValidationError(
            "%(names)s: the mask %(mask)s stands for a stored value, and none is stored; enter the value.",
            code="mask_without_value",
            params={"names": ", ".join(missing), "mask": MASK},
        )
    return unmask_values(submitted, stored)


class McpServerForm(forms.ModelForm):
    """The server form: lists edited as JSON, env/headers masked both ways."""

    args = StringListField(help_text='A JSON list of strings, e.g. ["mcp-server-time", "--local-timezone", "UTC"].')
    tags = StringListField(help_text='A JSON list of strings, e.g. ["team-a", "internal"].')
    tool_allowlist = StringListField(help_text='Glob patterns, e.g. ["get_*"]; empty: every tool.')
    tool_denylist = StringListField(help_text='Glob patterns of tools to hide, e.g. ["delete_*"]. Deny wins.')
    url = forms.URLField(
        label="URL", max_length=500, required=False, assume_scheme="https", help_text="http:// or https:// only."
    )
    replica_urls = StringListField(
        label="Replica URLs",
        help_text='HTTP only: more URLs of the same server, e.g. ["https://b.example/mcp"]; one instance per URL.',
    )
    env = SecretMappingField(label="Environment")
    headers = SecretMappingField(label="HTTP headers")

    class Meta:
        model = McpServer
        fields = [
            "name",
            "slug",
            "description",
            "transport",
            "enabled",
            "tags",
            "command",
            "args",
            "env",
            "cwd",
            "url",
            "headers",
            "connect_timeout",
            "call_timeout",
            "max_concurrent_calls",
            "health_check_interval",
            "idle_timeout",
            "min_instances",
            "max_instances",
            "balancing_policy",
            "instance_max_concurrent_calls",
            "replica_urls",
            "tool_allowlist",
            "tool_denylist",
        ]
        widgets = {"description": forms.Textarea(attrs={"rows": 2, "cols": 80})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Stored secrets never reach the HTML: the unbound form shows masks only.
        for name in ("env", "headers"):
            self.initial[name] = mask_values(getattr(self.instance, name) or {})

    def _stored(self, name: str) -> dict[str, str]:
        # self.instance still holds the stored values here: construct_instance runs after clean_<field>.
        return dict(getattr(self.instance, name) or {}) if self.instance.pk else {}

    def clean_env(self) -> dict[str, str]:
        return unmask_or_error(self.cleaned_data["env"], self._stored("env"))

    def clean_headers(self) -> dict[str, str]:
        return unmask_or_error(self.cleaned_data["headers"], self._stored("headers"))


class ImportForm(forms.Form):
    """The admin upload of an mcpServers JSON file (Claude Desktop, Cursor, VS Code)."""

    file = forms.FileField(
        help_text='A JSON file with {"mcpServers": {...}}; servers are matched by slug (updated) or created.'
    )
