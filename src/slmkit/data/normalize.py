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


# --- configured field normalizers (data.normalize) ------------------------------------------

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_ISO_DATE = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$")
_DMY_OR_MDY = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})$")
_DAY_MONTH_NAME = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?\s+([a-z]+)\.?,?\s+(\d{4})$")
_MONTH_NAME_DAY = re.compile(r"^([a-z]+)\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})$")
_ISO_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[ tT](\d{2}:\d{2}(?::\d{2})?)(?:\.\d+)?(z|Z|[+-]\d{2}:?\d{2})?$")


class NormalizeError(ValueError):
    """A configured normalizer cannot read the value; the message says what was expected."""


def normalize_field(kind: str, value: Any) -> Any:
    """One output value through a `data.normalize` normalizer; null stays null.

    date: ISO (2026-03-14), day-first with dots (14.03.2026), US slashes (03/14/2026), and month
    names (14 March 2026, Mar 14, 2026) become YYYY-MM-DD. Slash dates whose first two numbers
    could both be a day or a month (03/04/2026) are ambiguous and refused rather than guessed.
    """
    if value is None:
        return None
    if kind == "number":
        if isinstance(value, bool):
            raise NormalizeError(f"expected a number, got {json_type(value)}")
        if isinstance(value, int | float):
            return value
        if isinstance(value, str):
            text = value.strip().replace(",", "").replace(" ", "")
            try:
                number = float(text)
            except ValueError:
                raise NormalizeError(f"{value!r} is not a number") from None
            return int(number) if number.is_integer() and "." not in text else number
        raise NormalizeError(f"expected a number, got {json_type(value)}")
    if not isinstance(value, str):
        raise NormalizeError(f"expected text, got {json_type(value)}")
    if kind == "strip":
        return value.strip()
    if kind == "lower":
        return value.strip().lower()
    if kind == "upper":
        return value.strip().upper()
    if kind == "collapse_spaces":
        return " ".join(value.split())
    if kind == "date":
        return _date(value)
    if kind == "datetime":
        found = _ISO_DATETIME.match(value.strip())
        if found is None:
            return _date(value) + "T00:00:00"
        date, clock, zone = found.groups()
        clock = clock if len(clock) == 8 else clock + ":00"
        zone = "" if zone is None else ("Z" if zone in ("z", "Z", "+00:00", "+0000") else zone)
        return f"{_date(date)}T{clock}{zone}"
    raise ValueError(f"slmkit bug: unknown normalizer {kind!r}")


def _date(value: str) -> str:
    import datetime as dt

    text = " ".join(value.strip().lower().split())
    year: int
    month: int | None = None
    day: int
    if found := _ISO_DATE.match(text):
        year, month, day = (int(g) for g in found.groups())
    elif found := _DMY_OR_MDY.match(text):
        first, second, year = (int(g) for g in found.groups())
        separator = text[len(found.group(1))]
        if separator == "." or first > 12 >= second:  # 14.03.2026: the dotted form is day-first everywhere it is used
            day, month = first, second
        elif second > 12 >= first:
            month, day = first, second
        elif first == second:
            day = month = first
        else:
            raise NormalizeError(f"{value!r} is ambiguous (day/month or month/day?); write it as YYYY-MM-DD")
    elif found := _DAY_MONTH_NAME.match(text):
        day, month, year = int(found.group(1)), _MONTHS.get(found.group(2)), int(found.group(3))
    elif found := _MONTH_NAME_DAY.match(text):
        month, day, year = _MONTHS.get(found.group(1)), int(found.group(2)), int(found.group(3))
    else:
        raise NormalizeError(f"{value!r} is not a date slmkit can read; write it as YYYY-MM-DD")
    if month is None:
        raise NormalizeError(f"{value!r} has no month slmkit can read; write it as YYYY-MM-DD")
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError as exc:
        raise NormalizeError(f"{value!r} is not a real date ({exc})") from None
