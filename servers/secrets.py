"""Encryption at rest and masking of upstream secrets (stdio env values, HTTP header values).

The key is derived from SECRET_KEY with HKDF, so rotating SECRET_KEY makes
stored secrets unreadable: re-enter them (or re-import) after a rotation.
"""

from __future__ import annotations

import base64
import json
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models

MASK = "********"


@cache
def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"mcphub.servers.secrets").derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(plaintext: str) -> str:
    return _fernet(settings.SECRET_KEY).encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet(settings.SECRET_KEY).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("stored secret cannot be decrypted (was SECRET_KEY changed?)") from exc


def mask_values(mapping: dict[str, str]) -> dict[str, str]:
    """The mapping with every value replaced by the mask: names stay visible, values never."""
    return dict.fromkeys(mapping, MASK)


def unmask_values(submitted: dict[str, str], stored: dict[str, str]) -> dict[str, str]:
    """Keep the stored value wherever a form or file sent the mask back unchanged."""
    return {key: stored.get(key, "") if value == MASK else value for key, value in submitted.items()}


class EncryptedJSONField(models.TextField):
    """A JSON value stored as one Fernet token: the database never sees the plaintext."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        if value is None or value == "":
            return {}
        return json.loads(decrypt(value))

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value else {}
        return value if value is not None else {}

    def get_prep_value(self, value: Any) -> str:
        return encrypt(json.dumps(value if value is not None else {}, sort_keys=True))

    def value_to_string(self, obj: models.Model) -> str:
        return json.dumps(mask_values(self.value_from_object(obj) or {}))
