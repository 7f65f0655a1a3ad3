"""Personal data removal: find PII in a row's texts and its answer, replace it with placeholders.

A fine-tuned model memorises what it trains on, so an e-mail address in a ticket can come back
out of the model verbatim. The dataset builder therefore scrubs every row before anything is
written. Replacement is consistent within a row: the same e-mail in the input and in the
answer becomes the same `<EMAIL_1>`, so the model still learns to copy the right value into
its answer, just not the value itself.

Recognizers live in `pii_patterns.py` (checksummed and cue-confirmed patterns) and
`pii_names.py` (an offline first-name gazetteer). Where two kinds claim overlapping text the
more specific one wins (a URL with its token before the key, an e-mail ... before a name).

`surviving_canaries` is the last line of defence: fake secrets planted in the sources must not
appear anywhere in the built dataset.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmkit.config import PiiConfig
from slmkit.data import pii_patterns as patterns
from slmkit.errors import ConfigError, DataError

# Which kind wins when spans of two kinds overlap: the first one listed. A URL goes whole, with
# the token in it.
PRIORITY = ("URL", "SECRET", "EMAIL", "IBAN", "CARD", "SSN", "IP", "PHONE", "ADDRESS", "NAME")
_RANK = {kind: i for i, kind in enumerate(PRIORITY)}
_HAS_DIGIT = re.compile(r"\d").search
_NOT_DIGIT = re.compile(r"\D")
_NOT_ALNUM = re.compile(r"[\W_]")
_SPACES = re.compile(r"\s+")
_SHORTEST = 6  # "a@b.io": nothing but a name is shorter
_CACHED_CHARS = 64
_CACHE_SIZE = 20_000


@dataclass(frozen=True)
class PiiSpan:
    """`text[start:end]` is personal data of `kind` (one of PII_ENTITIES)."""

    start: int
    end: int
    kind: str


def _normalized(kind: str, value: str) -> str:
    """The form two mentions of one value share: 'A@B.com' and 'a@b.com' get one placeholder."""
    if kind in ("PHONE", "CARD", "SSN"):
        return _NOT_DIGIT.sub("", value)
    if kind == "IBAN":
        return _NOT_ALNUM.sub("", value).upper()
    return _SPACES.sub(" ", value.casefold()).strip()


class PiiScrubber:
    """Finds and replaces the configured kinds of personal data; one instance serves many rows."""

    def __init__(self, cfg: PiiConfig) -> None:
        self.cfg = cfg
        kinds = set(cfg.entities) if cfg.enabled else set()
        if cfg.ner == "none":
            kinds.discard("NAME")
        self.kinds = frozenset(kinds)
        self._numbers = self.kinds & {"CARD", "SSN", "PHONE"}
        self._keep = tuple(k for k in cfg.keep if k)
        self._find_names: Callable[[str], list[tuple[int, int]]] | None = None
        self._cache: dict[str, tuple[PiiSpan, ...]] = {}
        if "NAME" in self.kinds:
            from slmkit.data.pii_names import find_names, first_names

            try:
                first_names()  # read the census lists now, not inside the first row
            except (ModuleNotFoundError, FileNotFoundError) as exc:
                raise ConfigError(
                    [
                        f"data.pii.ner: 'names' reads the first-name lists of the Python package `names` ({exc})"
                        " - install it: pip install names==0.3.0, or set ner: none"
                    ]
                ) from exc
            self._find_names = find_names

    def find(self, text: str) -> list[PiiSpan]:
        """Non-overlapping spans of personal data in `text`, sorted by position.

        A span lying inside an occurrence of a `keep` string is left out.
        """
        return list(self._spans(text))

    def _spans(self, text: str) -> Sequence[PiiSpan]:
        if len(text) > _CACHED_CHARS:
            return self._find(text)
        # Short strings (labels, product names, answer fields) repeat across rows: remember them.
        cached = self._cache.get(text)
        if cached is None:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            cached = self._cache[text] = tuple(self._find(text))
        return cached

    def _find(self, text: str) -> list[PiiSpan]:
        kinds = self.kinds
        if not kinds or (len(text) < _SHORTEST and self._find_names is None):
            return []
        found: list[tuple[int, int, str]] = []
        lowered = text.lower()
        # Each recognizer is cheap when its marker is absent; most rows hold no personal data at all.
        if "SECRET" in kinds and (spans := patterns.find_secret(text, lowered)):
            found += [(s, e, "SECRET") for s, e in spans]
        if "URL" in kinds and (spans := patterns.find_url(text)):
            found += [(s, e, "URL") for s, e in spans]
        if "EMAIL" in kinds and (spans := patterns.find_email(text)):
            found += [(s, e, "EMAIL") for s, e in spans]
        if _HAS_DIGIT(text):
            if patterns.has_long_number(text):
                if "IBAN" in kinds and (spans := patterns.find_iban(text)):
                    found += [(s, e, "IBAN") for s, e in spans]
                if self._numbers:
                    found += patterns.find_numbers(text, self._numbers)
                if "SSN" in kinds and (spans := patterns.find_ssn_labelled(text)):
                    found += [(s, e, "SSN") for s, e in spans]
                if "IP" in kinds and (spans := patterns.find_ip(text)):
                    found += [(s, e, "IP") for s, e in spans]
            elif "IP" in kinds and ("::" in text or text.count(":") >= 7) and (spans := patterns.find_ip(text)):
                found += [(s, e, "IP") for s, e in spans]  # "::1"-style IPv6 needs no long digit run
            if "ADDRESS" in kinds and (spans := patterns.find_address(text, lowered)):
                found += [(s, e, "ADDRESS") for s, e in spans]
                # A number inside a street address is its house number, however much it looks like a phone.
                found = [f for f in found if f[2] != "PHONE" or not any(s <= f[0] and f[1] <= e for s, e in spans)]
        if self._find_names is not None and (spans := self._find_names(text)):
            found += [(s, e, "NAME") for s, e in spans]
        if not found:
            return []
        return self._resolve(text, found)

    def _resolve(self, text: str, found: list[tuple[int, int, str]]) -> list[PiiSpan]:
        found.sort(key=lambda f: (_RANK[f[2]], f[0] - f[1], f[0]))
        kept: list[tuple[int, int, str]] = []
        protected = [
            (m.start(), m.end()) for keep in self._keep if keep in text for m in re.finditer(re.escape(keep), text)
        ]
        for start, end, kind in found:
            if start >= end or any(s < end and start < e for s, e, _ in kept):
                continue
            if any(s <= start and end <= e for s, e in protected):
                continue
            kept.append((start, end, kind))
        kept.sort()
        return [PiiSpan(s, e, k) for s, e, k in kept]

    def scrub_row(self, texts: dict[str, str], output: Any) -> tuple[dict[str, str], Any, Counter[str]]:
        """Replace PII in every text and in every string inside `output`; one placeholder per value per row.

        Returns the new texts, the new output and how many occurrences of each kind were replaced.
        """
        row = _RowPlaceholders()
        new_texts = {name: self._scrub(text, row) for name, text in texts.items()}
        return new_texts, self._walk(output, row), row.counts

    def scrub(self, text: str) -> str:
        """One text alone, with its own placeholders (`<EMAIL_1>`): for logs, which keep no rows."""
        return self._scrub(text, _RowPlaceholders())

    def _walk(self, value: Any, row: _RowPlaceholders) -> Any:
        if isinstance(value, str):
            return self._scrub(value, row)
        if isinstance(value, dict):
            return {k: self._scrub(v, row) if type(v) is str else self._walk(v, row) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(v, row) for v in value]
        return value

    def _scrub(self, text: str, row: _RowPlaceholders) -> str:
        spans = self._spans(text)
        if not spans:
            return text
        parts: list[str] = []
        pos = 0
        for span in spans:
            parts += (text[pos : span.start], row.placeholder(span.kind, text[span.start : span.end]))
            pos = span.end
        parts.append(text[pos:])
        return "".join(parts)


class _RowPlaceholders:
    """The placeholders handed out in one row: equal values (normalized) share one."""

    def __init__(self) -> None:
        self.by_value: dict[tuple[str, str], str] = {}
        self.numbered: dict[str, int] = {}
        self.counts: Counter[str] = Counter()

    def placeholder(self, kind: str, value: str) -> str:
        self.counts[kind] += 1
        key = (kind, _normalized(kind, value))
        found = self.by_value.get(key)
        if found is None:
            number = self.numbered[kind] = self.numbered.get(kind, 0) + 1
            found = self.by_value[key] = f"<{kind}_{number}>"
        return found


def surviving_canaries(text: str, canaries: Sequence[str]) -> list[str]:
    """The canaries that occur in `text`, ignoring case, and also ignoring whitespace."""
    if not canaries:
        return []
    folded = text.casefold()
    squeezed = "".join(folded.split())
    found = []
    for canary in canaries:
        c = canary.casefold()
        compact = "".join(c.split())
        if compact and (c in folded or compact in squeezed):
            found.append(canary)
    return found


def check_canaries(folder: Path, canaries: Sequence[str]) -> int:
    """Raise DataError if a planted fake secret is in any JSONL file of `folder`; returns how many were checked.

    The build calls it on the finished dataset directory before anything is stored, so a
    canary that survives means no dataset version, not a leaked one.
    """
    if not canaries:
        return 0
    for path in sorted(folder.glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                found = surviving_canaries(line, canaries)
                if found:
                    raise DataError(
                        f"canary {found[0][:4]}... survived PII removal: {path.name} line {number}; nothing was stored",
                        hint="the PII rules miss this kind of secret: add its entity type to data.pii.entities "
                        "(or a pattern for it), then build again",
                    )
    return len(canaries)
