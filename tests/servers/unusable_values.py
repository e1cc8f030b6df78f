"""Values a server could be given that the hub cannot use: each must be an error on its field.

One list for the model, admin form, REST and import tests, so the four paths are held to the same rules.
"""

from __future__ import annotations

import json

# (field, value): JSON-encodable, so every path can send it.
UNUSABLE: list[tuple[str, object]] = [
    ("call_timeout", 1e300),
    ("connect_timeout", 1e300),
    ("call_timeout", 0),
    ("connect_timeout", -1),
    ("max_concurrent_calls", 10**6),
    ("health_check_interval", 10**7),
    ("idle_timeout", 10**7),
    ("instance_max_concurrent_calls", 5000),
    ("env", {"A=B": "x"}),
    ("env", {"A\x00": "x"}),
    ("env", {"1A": "x"}),
    ("env", {"A": "x\x00y"}),
    ("headers", {"X-A": "v\r\nInjected: 1"}),
    ("headers", {"Bad Name": "v"}),
    ("headers", {"X-A": "v\x00"}),
    ("tool_allowlist", [1, 2]),
    ("tool_denylist", ["ok", None]),
    ("args", ["a\x00b"]),
    ("tags", ["a\x00"]),
]
UNUSABLE_IDS = [f"{field}={value!r}" for field, value in UNUSABLE]


def as_form_text(value: object) -> str:
    """The value as typed into the admin form: numbers as they are, lists and objects as JSON."""
    return str(value) if isinstance(value, int | float) else json.dumps(value)
