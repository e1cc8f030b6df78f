"""Import and export of the ``{"mcpServers": {name: entry}}`` format of Claude Desktop, Cursor and VS Code.

One module for the management commands and the admin upload. An entry is either
stdio (``command``, ``args``, ``env``, ``cwd``) or HTTP (``url``, ``headers``,
``type``). The key becomes the slug (and the name of a new server). Import is
idempotent (update by slug, create otherwise), validates each entry with the
model through ``services.save_server`` in its own savepoint, and rejects a bad
entry with its reason while keeping the good ones. Export masks secret values
unless asked; importing a mask keeps the stored value, so export → import is safe.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction

from servers import services
from servers.forms import unmask_or_error
from servers.models import CONNECTION_FIELDS, McpServer, Transport
from servers.secrets import mask_values
from servers.validators import string_mapping

SLUG_MAX = McpServer._meta.get_field("slug").max_length or 30

# `type` values seen in the wild (VS Code: http/sse/stdio; Cursor and others: streamableHttp, streamable-http).
TYPE_TO_TRANSPORT = {
    "stdio": Transport.STDIO,
    "http": Transport.STREAMABLE_HTTP,
    "streamable-http": Transport.STREAMABLE_HTTP,
    "streamable_http": Transport.STREAMABLE_HTTP,
    "streamablehttp": Transport.STREAMABLE_HTTP,
    "sse": Transport.SSE,
}
TRANSPORT_TO_TYPE = {Transport.STREAMABLE_HTTP: "http", Transport.SSE: "sse"}

# Keys of the client format: always applied (absent means empty), the file is their source of truth.
FORMAT_FIELDS = ("command", "args", "env", "cwd", "url", "headers")
# Hub-specific keys: applied only when present, so re-importing a plain client file keeps admin tuning. The
# registry's own settings, then the connection settings the client format has no key for (the transport has
# its own key, ``type``).
HUB_FIELDS = (
    "name",
    "description",
    "enabled",
    "tags",
    "health_check_interval",
    "tool_allowlist",
    "tool_denylist",
    *(name for name in CONNECTION_FIELDS if name != "transport" and name not in FORMAT_FIELDS),
)


class McpJsonError(ValueError):
    """The file as a whole is unusable (not JSON, no ``mcpServers`` object)."""


class EntryRejected(ValueError):
    """One entry is unusable; the message is the reason, starting with the field it concerns."""


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        return f"{len(self.created)} created, {len(self.updated)} updated, {len(self.rejected)} rejected"


def load(text: str | bytes) -> dict[str, Any]:
    """Parse a file's text and return its ``mcpServers`` mapping, or raise McpJsonError."""
    try:
        data = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise McpJsonError(f"not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("mcpServers"), dict):
        raise McpJsonError('expected a JSON object with an "mcpServers" object')
    return data["mcpServers"]


def slug_for_key(key: str) -> str:
    """The slug for an mcpServers key: lowercase, ``[a-z0-9-]``, at most 30 characters."""
    slug = re.sub(r"[^a-z0-9]+", "-", key.strip().lower()).strip("-")
    if not slug:
        raise EntryRejected(f"slug: cannot make a slug of [a-z0-9-] from the name {key!r}")
    if len(slug) > SLUG_MAX:
        raise EntryRejected(f"slug: {slug!r} is longer than {SLUG_MAX} characters; use a shorter name")
    return slug


def _transport(entry: Mapping[str, Any]) -> str:
    kind = entry.get("type")
    if kind is not None:
        transport = TYPE_TO_TRANSPORT.get(str(kind).lower())
        if transport is None:
            raise EntryRejected(f"type: unknown transport {kind!r} (stdio, http, streamable-http, sse)")
        return transport
    if "command" in entry:
        return Transport.STDIO
    if "url" in entry:
        return Transport.STREAMABLE_HTTP
    raise EntryRejected("command: an entry needs a command (stdio) or a url (HTTP)")


def _apply(server: McpServer, key: str, entry: Mapping[str, Any], previous: McpServer | None) -> None:
    """Copy an entry's fields onto the server, unmasking secrets against the stored (`previous`) values."""
    server.transport = _transport(entry)
    defaults: dict[str, Any] = {"command": "", "args": [], "env": {}, "cwd": "", "url": "", "headers": {}}
    for name in FORMAT_FIELDS:
        value = entry.get(name)
        setattr(server, name, defaults[name] if value is None else value)
    for name in ("env", "headers"):
        try:
            value = string_mapping(getattr(server, name))
            setattr(server, name, unmask_or_error(value, dict(getattr(previous, name)) if previous else {}))
        except ValidationError as exc:
            raise EntryRejected(f"{name}: {' '.join(exc.messages)}") from exc
    for name in HUB_FIELDS:
        if name in entry:
            setattr(server, name, entry[name])
    if "disabled" in entry and "enabled" not in entry:  # Cline / Roo Code style
        server.enabled = not entry["disabled"]
    if previous is None and "name" not in entry:
        server.name = key


def _reason(exc: ValidationError) -> str:
    if not hasattr(exc, "error_dict"):
        return "; ".join(exc.messages)
    parts = []
    for name, messages in exc.message_dict.items():
        label = "entry" if name == NON_FIELD_ERRORS else name
        parts.append(f"{label}: {' '.join(messages)}")
    return "; ".join(parts)


def import_entry(key: str, entry: Any) -> tuple[str, bool]:
    """Create or update one server from an entry; returns (slug, created). Raises EntryRejected."""
    if not isinstance(entry, dict):
        raise EntryRejected("entry: must be a JSON object")
    slug = slug_for_key(key)
    previous = McpServer.objects.filter(slug=slug).first()
    server = McpServer.objects.get(pk=previous.pk) if previous else McpServer(slug=slug)
    _apply(server, key, entry, previous)
    try:
        services.save_server(server, previous=previous)
    except ValidationError as exc:
        raise EntryRejected(_reason(exc)) from exc
    return slug, previous is None


def import_servers(entries: Mapping[str, Any]) -> ImportReport:
    """Import every entry of an ``mcpServers`` mapping, each in its own savepoint."""
    report = ImportReport()
    seen: dict[str, str] = {}
    for key, entry in entries.items():
        label = key
        try:
            label = slug_for_key(key)
            if label in seen:
                raise EntryRejected(f"slug: {label!r} is also the slug of the entry {seen[label]!r} in this file")
            seen[label] = key
            with transaction.atomic():
                slug, created = import_entry(key, entry)
        except EntryRejected as exc:
            report.rejected.append((label, str(exc)))
            continue
        except IntegrityError as exc:  # e.g. a concurrent import created the same slug
            report.rejected.append((label, f"entry: database error: {exc}"))
            continue
        (report.created if created else report.updated).append(slug)
    return report


def import_text(text: str | bytes) -> ImportReport:
    """Parse and import a whole file (raises McpJsonError if the file itself is unusable)."""
    return import_servers(load(text))


def export_entry(server: McpServer, *, show_secrets: bool = False, hub_fields: bool = False) -> dict[str, Any]:
    """One server as an mcpServers entry; secret values masked unless `show_secrets`."""

    def secret(mapping: dict[str, str]) -> dict[str, str]:
        return dict(mapping) if show_secrets else mask_values(mapping)

    entry: dict[str, Any]
    if server.transport == Transport.STDIO:
        entry = {"command": server.command, "args": list(server.args)}
        if server.env:
            entry["env"] = secret(server.env)
        if server.cwd:
            entry["cwd"] = server.cwd
    else:
        entry = {"type": TRANSPORT_TO_TYPE[Transport(server.transport)], "url": server.url}
        if server.headers:
            entry["headers"] = secret(server.headers)
    if hub_fields:
        entry.update({name: getattr(server, name) for name in HUB_FIELDS})
    return entry


def export_servers(
    servers: Iterable[McpServer] | None = None, *, show_secrets: bool = False, hub_fields: bool = False
) -> dict[str, Any]:
    """The ``{"mcpServers": {slug: entry}}`` document for these servers (default: all, by slug)."""
    servers = McpServer.objects.order_by("slug") if servers is None else servers
    return {
        "mcpServers": {
            server.slug: export_entry(server, show_secrets=show_secrets, hub_fields=hub_fields) for server in servers
        }
    }


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
