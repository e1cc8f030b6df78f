"""What a server's stored values must be for the hub to use them, in one place.

Model field validators: ``full_clean`` runs them for the admin form, the REST API
and the ``mcpServers`` import alike, each error on the field it concerns.
"""

from __future__ import annotations

import math
import re
from typing import Any

from django.core.exceptions import ValidationError

# POSIX names: what a shell or os.environ round-trips (no "=", no NUL, no leading digit).
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# RFC 9110 token: the characters an HTTP field name may hold.
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# Control characters an HTTP field value may not hold (HTAB is allowed): CR/LF would split the header.
HEADER_VALUE_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def finite_number(value: float) -> None:
    """NaN and infinity pass every min/max comparison; refuse them first (a JSON import can send both)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError("Must be a finite number.", code="not_finite")


def string_list(value: Any) -> None:
    """A JSON list of strings without NUL (a process argument or a PostgreSQL JSON string cannot hold one)."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("Must be a JSON list of strings.", code="not_string_list")
    if any("\x00" in item for item in value):
        raise ValidationError("The strings may not contain a NUL character.", code="nul")


def string_mapping(value: Any) -> dict[str, str]:
    """The value as a JSON object of strings (env, headers), or a ValidationError; checked before unmasking."""
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        raise ValidationError("Must be a JSON object whose values are strings.", code="not_string_mapping")
    return value


def env_mapping(value: Any) -> None:
    """Environment variables a process can receive: names ``[A-Za-z_][A-Za-z0-9_]*``, values without NUL."""
    mapping = string_mapping(value)
    errors = [
        ValidationError(
            "%(name)r is not a variable name: letters, digits and _, not starting with a digit.",
            code="env_name",
            params={"name": name},
        )
        for name in mapping
        if not ENV_NAME.match(name)
    ]
    errors += [
        ValidationError("The value of %(name)s contains a NUL character.", code="env_value", params={"name": name})
        for name, item in mapping.items()
        if "\x00" in item and ENV_NAME.match(name)
    ]
    if errors:
        raise ValidationError(errors)


def header_mapping(value: Any) -> None:
    """HTTP headers that can be sent: names are HTTP tokens, values hold no control character (CR, LF, NUL...)."""
    mapping = string_mapping(value)
    errors = [
        ValidationError("%(name)r is not an HTTP header name.", code="header_name", params={"name": name})
        for name in mapping
        if not HEADER_NAME.match(name)
    ]
    errors += [
        ValidationError(
            "The value of %(name)s contains a control character (CR, LF, NUL...).",
            code="header_value",
            params={"name": name},
        )
        for name, item in mapping.items()
        if HEADER_VALUE_FORBIDDEN.search(item) and HEADER_NAME.match(name)
    ]
    if errors:
        raise ValidationError(errors)
