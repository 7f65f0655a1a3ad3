"""Normalization: one spelling for text that means the same, one canonical form for outputs."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Any

# Tabs and the Unicode spaces exports produce (no-break, thin, ideographic ...) all read as one
# space to a person; left alone they make equal tickets differ and waste tokens.
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")
# Control characters are invisible in every viewer, so no label can depend on them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def normalize_text(text: str) -> str:
    """NFC, `\\n` line ends, no trailing spaces, single spaces, at most one blank line, stripped."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = [_SPACES.sub(" ", line).rstrip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def dedup_key(input_text: str) -> str:
    """sha256 of the input casefolded and whitespace-collapsed: equal for inputs a reader calls equal."""
    return hashlib.sha256(" ".join(input_text.casefold().split()).encode()).hexdigest()


class OutputError(ValueError):
    """The output value cannot be read as a JSON object."""


def parse_output(value: Any) -> dict[str, Any]:
    """A JSON object from an object or from JSON text, its string values NFC and stripped."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise OutputError(f"not valid JSON text ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise OutputError(f"a JSON {json_type(value)}, not an object with named fields")
    return _clean(value)


def json_type(value: Any) -> str:
    """The JSON name of a Python value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value).strip()
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
