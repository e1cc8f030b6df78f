"""The request-body parser of the REST API: DRF's JSON parser, refusing what would otherwise end in a 500.

A NUL character cannot be stored by PostgreSQL (text or jsonb), a lone surrogate cannot be
encoded for it, a non-finite number cannot be rendered back as JSON, and JSON nested thousands
deep exhausts Python's recursion limit. Each is refused here, for every endpoint and every field
(dictionary keys included, which DRF's fields do not check), as a 400 naming the field.
"""

from __future__ import annotations

import math
import re
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.settings import api_settings

# Far deeper than any body of this API (a server's env is 2 levels).
MAX_DEPTH = 32
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable(text: str) -> str | None:
    """Why PostgreSQL cannot take this text, or None."""
    found = UNSTORABLE.search(text)
    if found is None:
        return None
    return "Null characters are not allowed" if found.group() == "\x00" else "Surrogate characters are not allowed"


def check_body(data: object) -> None:
    """Refuse NUL and surrogate characters (keys too), non-finite numbers, nesting deeper than ``MAX_DEPTH``."""
    stack: list[tuple[object, str, int]] = [(data, "", 1)]  # (value, where, how many containers deep)
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH and isinstance(value, dict | list):
            raise ParseError(f"Nested deeper than {MAX_DEPTH} levels (at {path}).")
        if isinstance(value, str):
            if reason := _unstorable(value):
                _refuse(path, reason)
        elif isinstance(value, float):
            if not math.isfinite(value):
                _refuse(path, "Numbers must be finite")
        elif isinstance(value, dict):
            for key, item in value.items():
                key_path = f"{path}.{key}" if path else key
                if reason := _unstorable(key):
                    _refuse(key_path, reason)
                stack.append((item, key_path, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value))


def _refuse(path: str, reason: str) -> None:
    """A 400 keyed by the top-level field (as DRF's field errors are), saying where below it."""
    path = path.encode("utf-8", "backslashreplace").decode()  # a surrogate echoed back would not encode either
    field = path.split(".", 1)[0].split("[", 1)[0] or api_settings.NON_FIELD_ERRORS_KEY
    where = f" (at {path})" if path and path != field else ""
    raise ValidationError({field: [f"{reason}{where}."]})


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as error:  # json's own guard against deep nesting
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels.") from error
        check_body(data)
        return data
