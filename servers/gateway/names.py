"""Public names at /mcp: `<slug><separator><name>`, at most 64 characters.

Rule (documented in the README): slugs are `[a-z0-9-]` and the separator
(default `__`) may contain none of those characters, so the part before the
first separator is always the slug: names of different servers can never
collide. A name longer than 64 characters keeps its first characters and ends
with `~` and 10 hex digits of the SHA-256 of the original name; the registry
refuses a second tool of one server whose shortened name is already taken, so
names within a server cannot collide either.
"""

from __future__ import annotations

import hashlib

from servers.conf import servers_conf

MAX_LENGTH = 64
HASH_LENGTH = 10


def separator() -> str:
    return servers_conf().tool_separator


def public_name(slug: str, name: str) -> str:
    full = f"{slug}{separator()}{name}"
    if len(full) <= MAX_LENGTH:
        return full
    digest = hashlib.sha256(name.encode()).hexdigest()[:HASH_LENGTH]
    return full[: MAX_LENGTH - HASH_LENGTH - 1] + "~" + digest


def split_slug(public: str) -> tuple[str, str] | None:
    """The slug and the rest of a public name, or None when it has no separator."""
    slug, sep, rest = public.partition(separator())
    return (slug, rest) if sep and slug and rest else None


RESOURCE_SCHEME = "mcphub+"


def public_uri(slug: str, uri: str) -> str:
    """A resource URI at /mcp: `mcphub+<slug>:<original uri>` (a valid URI scheme, reversible)."""
    return f"{RESOURCE_SCHEME}{slug}:{uri}"


def split_uri(public: str) -> tuple[str, str] | None:
    if not public.startswith(RESOURCE_SCHEME):
        return None
    slug, sep, uri = public[len(RESOURCE_SCHEME) :].partition(":")
    return (slug, uri) if sep and slug and uri else None
