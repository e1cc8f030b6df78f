"""The registry: MCP servers and the tools, resources and prompts discovered on them."""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import os
import shutil
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import (
    MaxValueValidator,
    MinValueValidator,
    ProhibitNullCharactersValidator,
    RegexValidator,
    URLValidator,
)
from django.db import models
from django.db.models import Q
from django.utils import timezone

from servers.secrets import EncryptedJSONField
from servers.upstream.config import UpstreamConfig
from servers.validators import env_mapping, finite_number, header_mapping, string_list

slug_validator = RegexValidator(r"^[a-z0-9-]+$", "Use lowercase letters, digits and hyphens only.")
no_nul = ProhibitNullCharactersValidator()


def _positive(value: float) -> None:
    """Kept for migration 0001; the bounds below replaced it."""
    if value is None or value <= 0:
        raise ValidationError("Must be greater than zero.")


def _between(low: float, high: float) -> list[Any]:
    """Validators of a number the hub can use: finite, within [low, high] (the bounds show in the API schema)."""
    return [finite_number, MinValueValidator(low), MaxValueValidator(high)]


class Transport(models.TextChoices):
    STDIO = "stdio", "stdio (local process)"
    STREAMABLE_HTTP = "streamable_http", "Streamable HTTP"
    SSE = "sse", "SSE (legacy HTTP)"


class Status(models.TextChoices):
    """Written by the health checks (monitoring); read by the gateway's circuit breaker."""

    UNKNOWN = "unknown"
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


class BalancingPolicy(models.TextChoices):
    """How a server's calls are spread over its instances (servers.upstream.balancing)."""

    ROUND_ROBIN = "round_robin", "round robin"
    LEAST_CONNECTIONS = "least_connections", "least connections (fewest calls in flight)"
    WEIGHTED = "weighted", "weighted by recent latency and errors"
    AFFINITY = "affinity", "session affinity (one client, one instance)"


# The settings an upstream connection is made of: UpstreamConfig's fields (each one a McpServer field of the
# same name) but who the server is and what the hub learned of it. A change to one makes live sessions reconnect.
CONNECTION_FIELDS = tuple(
    field.name
    for field in dataclasses.fields(UpstreamConfig)
    if field.name not in {"id", "slug", "era", "protocol_version", "config_version", "variant"}
)
# UpstreamConfig's fields the hub derives at run time (servers.upstream.eras), not stored.
DERIVED_FIELDS = frozenset({"variant"})

# Upper bound of a server's instances (stdio processes, or URLs) per web process.
MAX_INSTANCES = 16
# Bounds of the numbers a server is configured with: beyond them a value is a typo, and some
# (a Redis expiry, an asyncio deadline, a connection pool size) break the hub, not just the server.
MIN_TIMEOUT = 0.1
MAX_CONNECT_TIMEOUT = 300
MAX_CALL_TIMEOUT = 3600
MAX_CALLS_AT_ONCE = 1000
MAX_HEALTH_CHECK_INTERVAL = 86400
MAX_IDLE_TIMEOUT = 7 * 86400


class Era(models.TextChoices):
    """The MCP protocol era an upstream speaks, detected once and remembered."""

    UNKNOWN = "", "not detected yet"
    STATELESS = "stateless", "2026-07-28 (stateless)"
    HANDSHAKE = "handshake", "handshake (2025-11-25 and older)"


class McpServer(models.Model):
    name = models.CharField(max_length=100, validators=[no_nul])
    slug = models.CharField(
        max_length=30,
        unique=True,
        validators=[slug_validator],
        help_text="Tool prefix at /mcp: <slug>__<tool>. Lowercase letters, digits, hyphens; at most 30.",
    )
    description = models.TextField(blank=True, validators=[no_nul])
    transport = models.CharField(max_length=20, choices=Transport.choices, default=Transport.STDIO)

    # stdio
    command = models.CharField(
        max_length=500, blank=True, validators=[no_nul], help_text="Absolute path, or a program found on PATH."
    )
    args = models.JSONField(
        default=list, blank=True, validators=[string_list], help_text='A JSON list of strings, e.g. ["--port", "1"].'
    )
    env = EncryptedJSONField(
        blank=True,
        default=dict,
        validators=[env_mapping],
        help_text="Environment variables (encrypted, shown masked); names [A-Za-z_][A-Za-z0-9_]*.",
    )
    cwd = models.CharField(
        max_length=500, blank=True, validators=[no_nul], help_text="Working directory of the process."
    )

    # HTTP
    url = models.URLField(max_length=500, blank=True, validators=[no_nul])
    headers = EncryptedJSONField(
        blank=True, default=dict, validators=[header_mapping], help_text="HTTP headers (encrypted, shown masked)."
    )

    enabled = models.BooleanField(default=True)
    tags = models.JSONField(default=list, blank=True, validators=[string_list], help_text="A JSON list of strings.")
    connect_timeout = models.FloatField(
        default=10.0,
        validators=_between(MIN_TIMEOUT, MAX_CONNECT_TIMEOUT),
        help_text=f"Seconds ({MIN_TIMEOUT} to {MAX_CONNECT_TIMEOUT}).",
    )
    call_timeout = models.FloatField(
        default=60.0,
        validators=_between(MIN_TIMEOUT, MAX_CALL_TIMEOUT),
        help_text=f"Seconds ({MIN_TIMEOUT} to {MAX_CALL_TIMEOUT}).",
    )
    tool_allowlist = models.JSONField(
        default=list, blank=True, validators=[string_list], help_text='Glob patterns, e.g. ["get_*"]; empty: all.'
    )
    tool_denylist = models.JSONField(
        default=list, blank=True, validators=[string_list], help_text="Glob patterns of tools to hide."
    )
    max_concurrent_calls = models.PositiveIntegerField(
        default=16, validators=_between(1, MAX_CALLS_AT_ONCE), help_text=f"1 to {MAX_CALLS_AT_ONCE}."
    )
    health_check_interval = models.PositiveIntegerField(
        default=30,
        validators=_between(1, MAX_HEALTH_CHECK_INTERVAL),
        help_text=f"Seconds (1 to {MAX_HEALTH_CHECK_INTERVAL}).",
    )
    idle_timeout = models.PositiveIntegerField(
        default=0,
        validators=_between(0, MAX_IDLE_TIMEOUT),
        help_text=f"Seconds without calls before a stdio process is stopped; 0 keeps it running (at most "
        f"{MAX_IDLE_TIMEOUT}).",
    )

    # Pool: several instances of this server (stdio replicas, or HTTP replica URLs).
    min_instances = models.PositiveIntegerField(
        default=1,
        validators=_between(1, MAX_INSTANCES),
        help_text=f"stdio: processes always running (1 to {MAX_INSTANCES}).",
    )
    max_instances = models.PositiveIntegerField(
        default=1,
        validators=_between(1, MAX_INSTANCES),
        help_text="stdio: autoscaling adds processes up to this under sustained load.",
    )
    balancing_policy = models.CharField(
        max_length=20, choices=BalancingPolicy.choices, default=BalancingPolicy.LEAST_CONNECTIONS
    )
    instance_max_concurrent_calls = models.PositiveIntegerField(
        default=0,
        validators=_between(0, MAX_CALLS_AT_ONCE),
        help_text=f"Calls at once per instance; a full instance is skipped. 0: no limit (at most {MAX_CALLS_AT_ONCE}).",
    )
    replica_urls = models.JSONField(
        default=list,
        blank=True,
        help_text='HTTP: more URLs serving the same server, e.g. ["https://b.example/mcp"]; one instance per URL.',
    )

    # Learned and derived state.
    era = models.CharField(max_length=20, choices=Era.choices, blank=True, default=Era.UNKNOWN)
    protocol_version = models.CharField(max_length=20, blank=True)
    # The capabilities the server announced at its last discovery (wire JSON; null: not discovered since this
    # was recorded): what the hub advertises to the clients that can see it (servers.gateway.capabilities).
    capabilities = models.JSONField(null=True, blank=True, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.UNKNOWN)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_discovered_at = models.DateTimeField(null=True, blank=True)
    discovery_error = models.TextField(blank=True)
    # Bumped by every configuration change and by "restart": live sessions compare it
    # with theirs and reconnect, in every web process.
    config_version = models.PositiveIntegerField(default=1)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "MCP server"

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.transport == Transport.STDIO:
            if not self.command:
                errors["command"] = "A stdio server needs a command."
            elif not resolve_command(self.command):
                errors["command"] = f"{self.command!r} is not an executable file nor a program found on PATH."
            if self.cwd and not os.path.isdir(self.cwd):
                errors["cwd"] = f"{self.cwd!r} is not a directory."
        else:
            if not self.url:
                errors["url"] = "An HTTP server needs a URL."
            elif not self.url.startswith(("http://", "https://")):
                errors["url"] = "Only http:// and https:// URLs are allowed."
        errors.update(self._pool_errors())
        if errors:
            raise ValidationError(errors)

    def _pool_errors(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        low, high = self.min_instances, self.max_instances
        # Each within its bounds: the field validators say so; here only how they relate.
        if isinstance(low, int) and isinstance(high, int) and high < low:
            errors["max_instances"] = "Must be at least the minimum number of instances."
        urls = self.replica_urls
        if not _is_string_list(urls):
            errors["replica_urls"] = "Must be a JSON list of URLs."
        elif bad := [url for url in urls if not _is_http_url(url)]:
            errors["replica_urls"] = f"Not an http:// or https:// URL: {', '.join(bad)}."
        elif urls and self.transport == Transport.STDIO:
            errors["replica_urls"] = "Only HTTP servers have replica URLs; stdio servers scale with min/max instances."
        elif len(urls) + 1 > MAX_INSTANCES:
            errors["replica_urls"] = f"At most {MAX_INSTANCES - 1} replica URLs."
        elif self.url in urls or len(set(urls)) != len(urls):
            errors["replica_urls"] = "Each URL may appear once (the main URL included)."
        return errors

    def tool_visible(self, tool_name: str) -> bool:
        """Whether the allow/deny lists let this tool through (deny wins)."""
        if any(fnmatch.fnmatchcase(tool_name, pattern) for pattern in self.tool_denylist):
            return False
        return not self.tool_allowlist or any(fnmatch.fnmatchcase(tool_name, p) for p in self.tool_allowlist)

    @property
    def filter_version(self) -> str:
        """Short hash of the allow/deny lists: part of the tool-list cache key."""
        lists = json.dumps([self.tool_allowlist, self.tool_denylist], sort_keys=True)
        return hashlib.sha256(lists.encode()).hexdigest()[:12]

    def upstream_config(self) -> UpstreamConfig:
        """Everything the upstream layer needs to connect, in plain data (secrets decrypted)."""
        values = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(UpstreamConfig)
            if field.name not in DERIVED_FIELDS
        }
        return UpstreamConfig.from_mapping(
            values
            | {
                "command": resolve_command(self.command) if self.command else "",
                "env": dict(self.env),
                "cwd": self.cwd or None,
                "headers": dict(self.headers),
                "replica_urls": self.replica_urls if self.transport != Transport.STDIO else [],
            }
        )

    def connection_differs(self, other: McpServer) -> bool:
        """Whether live sessions made from ``other`` (this server's stored version) must reconnect for this one."""
        return any(getattr(self, name) != getattr(other, name) for name in CONNECTION_FIELDS)


def resolve_command(command: str) -> str | None:
    """The absolute path of an executable command, or None. Never through a shell."""
    if os.path.isabs(command):
        return command if os.path.isfile(command) and os.access(command, os.X_OK) else None
    return shutil.which(command)


def _is_string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_http_url(value: str) -> bool:
    try:
        URLValidator(schemes=["http", "https"])(value)
    except ValidationError:
        return False
    return True


class ScalingEvent(models.Model):
    """One autoscaling decision of a server's pool (written by `record`, from the pool's hook)."""

    server = models.ForeignKey(McpServer, on_delete=models.CASCADE, related_name="scaling_events")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    from_instances = models.PositiveIntegerField()
    to_instances = models.PositiveIntegerField()
    reason = models.CharField(max_length=300)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["server", "-at"], name="scaling_server_at")]

    def __str__(self) -> str:
        return f"{self.server_id}: {self.from_instances} → {self.to_instances} at {self.at:%Y-%m-%d %H:%M:%S}"

    @classmethod
    def record(cls, server_id: int, from_instances: int, to_instances: int, reason: str) -> ScalingEvent | None:
        """Keep one autoscaling decision of a server's pool (None if the server was deleted meanwhile)."""
        if not McpServer.objects.filter(pk=server_id).exists():
            return None
        return cls.objects.create(
            server_id=server_id, from_instances=from_instances, to_instances=to_instances, reason=reason[:300]
        )


class Capability(models.Model):
    """What discovery found on a server; upserted by servers.services.discover()."""

    server = models.ForeignKey(McpServer, on_delete=models.CASCADE)
    name = models.CharField(max_length=200)
    title = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True, help_text="Disabled ones are hidden from /mcp.")
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tool(Capability):
    server = models.ForeignKey(McpServer, on_delete=models.CASCADE, related_name="tools")
    input_schema = models.JSONField(default=dict)
    output_schema = models.JSONField(null=True, blank=True)
    annotations = models.JSONField(null=True, blank=True)

    class Meta(Capability.Meta):
        constraints = [models.UniqueConstraint(fields=["server", "name"], name="unique_tool_per_server")]


class Resource(Capability):
    server = models.ForeignKey(McpServer, on_delete=models.CASCADE, related_name="resources")
    uri = models.CharField(max_length=1000)
    mime_type = models.CharField(max_length=200, blank=True)

    class Meta(Capability.Meta):
        constraints = [models.UniqueConstraint(fields=["server", "uri"], name="unique_resource_per_server")]


class Prompt(Capability):
    server = models.ForeignKey(McpServer, on_delete=models.CASCADE, related_name="prompts")
    arguments = models.JSONField(default=list, blank=True)

    class Meta(Capability.Meta):
        constraints = [models.UniqueConstraint(fields=["server", "name"], name="unique_prompt_per_server")]


class AccessTokenQuerySet(models.QuerySet):
    def active(self) -> AccessTokenQuerySet:
        """The tokens that authenticate now: not revoked, not expired."""
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
        )


class AccessToken(models.Model):
    """A bearer token for /mcp and /api/. Only a SHA-256 of the secret is stored; it is shown once.

    Revoking keeps the row (``revoked_at``), so what a token did stays readable.
    """

    PREFIX = "mcphub_"

    name = models.CharField(
        max_length=100,
        validators=[no_nul],
        help_text="Who or what uses it; revoke_token NAME revokes every token of that name.",
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    # The first characters, so admins can tell tokens apart without the secret.
    hint = models.CharField(max_length=20, editable=False)
    servers = models.ManyToManyField(
        McpServer, blank=True, related_name="tokens", help_text="Servers this token may use; none selected: all."
    )
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AccessTokenQuerySet.as_manager()

    class Meta:
        ordering = ["name", "-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @staticmethod
    def hash_secret(secret: str) -> str:
        # Tokens are 256-bit random values: a fast hash is enough (no dictionary to attack).
        return hashlib.sha256(secret.encode()).hexdigest()

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def state(self) -> str:
        """One of "active", "expired", "revoked" (the admin list, list_tokens)."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expired else "active"
