"""Every write to the registry goes through one of these functions (no signals).

Views, admin actions, management commands and tasks call these; they keep
the side effects (discovery on commit, config versioning) in one place.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime

from celery import current_app
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from servers import discovery
from servers.models import AccessToken, McpServer, ScalingEvent, Tool
from servers.tasks import discover_server


def save_server(server: McpServer, *, previous: McpServer | None = None) -> McpServer:
    """Validate and save a server, then schedule its discovery once the transaction commits.

    `previous` is the stored version before the edit (None for a new server): when a
    connection field changed, live sessions in every web process reconnect.
    """
    server.full_clean()
    if previous is not None and server.connection_differs(previous):
        server.config_version = previous.config_version + 1
        server.era = ""  # the new command or URL may speak another protocol era
    server.save()
    transaction.on_commit(discovery.bump_registry_version)
    schedule_discovery([server.pk])
    return server


def schedule_discovery(server_ids: Iterable[int]) -> None:
    """Queue tools/resources/prompts discovery for these servers after the current transaction."""
    for server_id in list(server_ids):
        transaction.on_commit(lambda server_id=server_id: discover_server.delay(server_id))


def set_enabled(server_ids: Iterable[int], enabled: bool) -> int:
    """Enable or disable servers; returns how many changed."""
    ids = list(server_ids)
    changed = McpServer.objects.filter(pk__in=ids).exclude(enabled=enabled).update(enabled=enabled)
    transaction.on_commit(discovery.bump_registry_version)
    if enabled:
        schedule_discovery(ids)
    return changed


def request_restart(server_ids: Iterable[int]) -> int:
    """Ask every web process to restart these servers' sessions (processes) on next use."""
    changed = McpServer.objects.filter(pk__in=list(server_ids)).update(config_version=F("config_version") + 1)
    transaction.on_commit(discovery.bump_registry_version)
    return changed


def delete_server(server: McpServer) -> None:
    server.delete()
    transaction.on_commit(discovery.bump_registry_version)


def set_tools_enabled(changes: dict[int, bool]) -> int:
    """Enable or disable discovered tools by id (the admin toggle); returns how many rows changed.

    The affected servers' cached tool lists are dropped after commit, so /mcp sees the change.
    """
    changed = 0
    for enabled in (True, False):
        ids = [pk for pk, value in changes.items() if value is enabled]
        if ids:
            changed += Tool.objects.filter(pk__in=ids).exclude(enabled=enabled).update(enabled=enabled)
    if changed:
        for server_id in set(Tool.objects.filter(pk__in=list(changes)).values_list("server_id", flat=True)):
            transaction.on_commit(lambda server_id=server_id: discovery.invalidate_tool_cache(server_id))
    return changed


def record_scaling(server_id: int, from_instances: int, to_instances: int, reason: str) -> ScalingEvent | None:
    """Keep one autoscaling decision of a server's pool (None if the server was deleted meanwhile)."""
    if not McpServer.objects.filter(pk=server_id).exists():
        return None
    return ScalingEvent.objects.create(
        server_id=server_id, from_instances=from_instances, to_instances=to_instances, reason=reason[:300]
    )


def request_health_check(server_id: int) -> None:
    """Ask a monitoring worker to check this server now (the breaker's successful trial call).

    Sent by task name: `servers` never imports `monitoring`. Expires like a scheduled check would.
    """
    current_app.send_task("monitoring.tasks.check_server", args=[server_id], expires=60)


def create_token(
    name: str, server_slugs: Iterable[str] = (), expires_at: datetime | None = None
) -> tuple[AccessToken, str]:
    """Create an access token; returns it with its secret, which is never stored and shown only now.

    Raises ValueError (unknown slugs, an unusable name) with the reason.
    """
    slugs = list(server_slugs)
    servers = list(McpServer.objects.filter(slug__in=slugs))
    missing = set(slugs) - {server.slug for server in servers}
    if missing:
        raise ValueError(f"unknown server slug(s): {', '.join(sorted(missing))}")
    token = AccessToken(name=name, expires_at=expires_at)
    try:
        return token, issue_token(token, servers)
    except ValidationError as exc:
        raise ValueError(
            "; ".join(f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items())
        ) from exc


def issue_token(token: AccessToken, servers: Iterable[McpServer]) -> str:
    """Save a new token (name, expiry set) with a fresh secret and its servers; returns the secret.

    Only the secret's SHA-256 and its first characters (the hint) are stored. Raises ValidationError.
    """
    secret = AccessToken.PREFIX + secrets.token_urlsafe(32)
    token.token_hash = AccessToken.hash_secret(secret)
    token.hint = secret[:12]
    token.full_clean()
    with transaction.atomic():
        token.save()
        token.servers.set(list(servers))
    return secret


def update_token(token: AccessToken, servers: Iterable[McpServer]) -> AccessToken:
    """Save an edited token (name, expiry) and the servers it is limited to (none: all)."""
    token.full_clean()
    with transaction.atomic():
        token.save(update_fields=["name", "expires_at"])
        token.servers.set(list(servers))
    return token


def revoke_tokens(tokens: QuerySet[AccessToken]) -> int:
    """Revoke these tokens: they stop authenticating (within the gateway's token cache time).

    The rows stay, with ``revoked_at``, so history keeps their names. Returns how many were not revoked yet.
    """
    return tokens.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


def revoke_token(name: str) -> int:
    """Revoke every token of this name not revoked yet; returns how many. ValueError if there is none."""
    tokens = AccessToken.objects.filter(name=name)
    if not tokens.exists():
        raise ValueError(f"no token named {name!r}")
    revoked = revoke_tokens(tokens)
    if not revoked:
        raise ValueError(f"the token {name!r} is already revoked")
    return revoked
