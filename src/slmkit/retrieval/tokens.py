"""Words as SQLite FTS5's `unicode61 remove_diacritics 2` tokenizer cuts them, for queries and lengths.

BM25 is scored here from the index's own term lists (fts5vocab), so the query must be cut
into exactly the terms the index holds: letters and digits, lower-cased, accents removed.
"""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[^\W_]+")
# Words so common that matching them says nothing and costs a scan of most of the index.
_STOPWORDS_TEXT = (
    "a an and are as at be but by can do does for from has have how i if in is it its my of on or our "
    "so that the their there this to was we what when where which who why will with you your"
)
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


def tokens(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return _WORD.findall(plain)


def query_terms(text: str) -> list[str]:
    """The distinct terms of a query, stopwords out (all of them kept when nothing else is left)."""
    words = list(dict.fromkeys(tokens(text)))
    kept = [w for w in words if w not in STOPWORDS]
    return kept or words
