"""Edits of a chunk's text for training rows that teach reading instead of recall.

A counterfactual row changes the answer's value in its chunk (the numbers moved by one random
amount: "18 months" -> "24 months") and in the answer alike, so the only way to the right answer
is to copy it from the context. An entity-swap row replaces the name the question asks about
("HaloCam 2K") with another name of the same section ("Lumen 27 Monitor") everywhere in the
context, or drops the sentences naming it when every other name is there already, and answers
with the refusal: the documents then describe neighbours, not the thing asked about.

A *name* is a run of words that start with a capital letter or hold a digit, with at least one
capitalised word not opening a sentence ("HaloCam 2K", "VoltDock 7-in-1", "Sweden", "the
Netherlands" -> "Netherlands"). No word list or tagger: the runs a question and its chunk share
are what the swap needs.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

_WORD = re.compile(r"\S+")
_OPENERS = "([{\"'“‘"
_QUOTES = ")]}\"'”’"
_CLOSERS = ".,;:!?" + _QUOTES
_SENTENCE_END = ".!?:"
# An integer not part of a decimal ("4.90" stays as it is).
_INTEGER = re.compile(r"(?<![\d.,])\d+(?![.,]?\d)")
_NEXT_WORD = re.compile(r"(\s+)([A-Za-z]+)")
_SENTENCE_BREAK = re.compile(r"[.!?](?=\s)|\n\s*\n")
_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*)+")


def names(text: str) -> list[str]:
    """Every name in `text`, each once, in order of first appearance."""
    return list(dict.fromkeys(text[start:end] for start, end in _name_spans(text)))


def question_name(question: str, text: str) -> str | None:
    """The longest name of the question (or a part of one) that `text` holds as whole words; None if none."""
    found: list[str] = []
    for start, end in _name_spans(question):
        words = question[start:end].split(" ")
        for size in range(len(words), 0, -1):
            for first in range(len(words) - size + 1):
                part = " ".join(words[first : first + size])
                if _capitalised(part.split(" ")) and find(text, part):
                    found.append(part)
    return max(found, key=len, default=None)


def find(text: str, phrase: str) -> list[tuple[int, int]]:
    """Spans of `phrase` in `text` as whole words, case and runs of whitespace aside."""
    words = phrase.split()
    if not words:
        return []
    pattern = r"(?<![\w-])" + r"\s+".join(map(re.escape, words)) + r"(?![\w-])"
    return [m.span() for m in re.finditer(pattern, text, flags=re.IGNORECASE)]


def replace_name(text: str, old: str, new: str) -> str:
    """`text` with every whole-word `old` written as `new`."""
    out, last = [], 0
    for start, end in find(text, old):
        out += [text[last:start], new]
        last = end
    return "".join(out) + text[last:]


def drop_sentences(text: str, name: str) -> str:
    """`text` without the sentences that hold `name` (a sentence ends at . ! ? before a space, or at a blank
    line); the text between the others is kept as it was."""
    kept, start = [], 0
    for m in _SENTENCE_BREAK.finditer(text):
        kept.append((start, m.end()))
        start = m.end()
    kept.append((start, len(text)))
    out = "".join(text[a:b] for a, b in kept if not find(text[a:b], name))
    return _BLANK_LINES.sub("\n\n", out).strip()  # a dropped paragraph leaves one blank line, not two


def drop_name(text: str, name: str, heading: str = "") -> str:
    """What is left of a chunk once nothing in it is about `name`: nothing when its heading (or section path)
    names it, since then every sentence is about it ("## HaloCam 2K" over "It comes with 18 months."),
    else the text without the sentences naming it."""
    return "" if find(heading, name) else drop_sentences(text, name)


def shift_amount(value: str, rng: random.Random) -> int | None:
    """A random, non-zero amount to move every number of `value` by, keeping them >= 1 (or >= 0 when one is
    0) and within about half the largest; None for a value without a whole number."""
    numbers = [int(m.group()) for m in _INTEGER.finditer(value)]
    if not numbers:
        return None
    low, reach = min(numbers), max(2, max(numbers) // 2)
    floor = 0 if low == 0 else 1
    amounts = [d for d in range(-reach, reach + 1) if d and low + d >= floor]
    return rng.choice(amounts)


def shift_numbers(value: str, amount: int) -> str:
    """`value` with each whole number moved by `amount`; the word after the last number follows its new count
    ("1 year" + 1 -> "2 years", "2 years" - 1 -> "1 year")."""
    matches = list(_INTEGER.finditer(value))
    if not matches:
        return value
    out, last = [], 0
    for n, m in enumerate(matches):
        old = int(m.group())
        new = old + amount
        out += [value[last : m.start()], str(new)]
        last = m.end()
        if n == len(matches) - 1:
            word = _NEXT_WORD.match(value, last)
            if word is not None:
                out += [word.group(1), _count_word(word.group(2), old, new)]
                last = word.end()
    return "".join(out) + value[last:]


def change_value(text: str, answer: str, amount: int, near: str | None) -> str | None:
    """`text` with the answer's occurrence moved by `amount` (the one nearest to the name `near`, when the
    text holds it; every occurrence otherwise); None when the text does not hold the answer."""
    spans = find(text, answer)
    if not spans:
        return None
    anchors = find(text, near) if near else []
    if anchors:
        spans = [min(spans, key=lambda span: min(_closeness(text, span, anchor) for anchor in anchors))]
    out, last = [], 0
    for start, end in spans:
        out += [text[last:start], shift_numbers(text[start:end], amount)]
        last = end
    return "".join(out) + text[last:]


def _closeness(text: str, span: tuple[int, int], anchor: tuple[int, int]) -> tuple[bool, bool, int]:
    """How well a value's occurrence belongs to a name: in its sentence first, then after it, then near it
    ("The A comes with 1 year. The B comes with 1 year.": B's value is the second)."""
    low, high = min(span[0], anchor[0]), max(span[1], anchor[1])
    same_sentence = _SENTENCE_BREAK.search(text, low, high) is None
    return not same_sentence, span[0] < anchor[0], abs(span[0] - anchor[1])


def _count_word(word: str, old: int, new: int) -> str:
    if old == 1 and new != 1 and not word.endswith("s"):
        return word + "s"
    if old != 1 and new == 1 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _capitalised(words: list[str]) -> bool:
    return any(w[:1].isupper() for w in words) and words != ["I"]


def _name_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each name: runs of capitalised or numbered words, broken by punctuation."""
    run: list[tuple[int, int, str]] = []  # (start, end, word) of the current run
    sentence_start = True

    def close() -> Iterator[tuple[int, int]]:
        words = [w for _, _, w in run]
        if words and _capitalised(words):
            yield run[0][0], run[-1][1]
        run.clear()

    previous_end = 0
    for m in _WORD.finditer(text):
        raw = m.group()
        lead = len(raw) - len(raw.lstrip(_OPENERS))
        core = raw[lead:].rstrip(_CLOSERS)
        start, end = m.start() + lead, m.start() + lead + len(core)
        if "\n\n" in text[previous_end : m.start()]:  # a new paragraph: a new sentence, a new run
            yield from close()
            sentence_start = True
        previous_end = m.end()
        if lead:
            yield from close()
        namelike = bool(core) and (core[0].isupper() or any(ch.isdigit() for ch in core))
        if namelike and not (sentence_start and not run and not any(ch.isdigit() for ch in core)):
            run.append((start, end, core))
        else:
            yield from close()
        if end < m.end():  # punctuation after the word ends the run
            yield from close()
        sentence_start = raw.rstrip(_QUOTES)[-1:] in tuple(_SENTENCE_END)
    yield from close()
