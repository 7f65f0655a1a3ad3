"""Person names without a model: a first-name gazetteer plus the phrases people put names after.

The gazetteer is the US census list of first names shipped inside the PyPI package `names`
(read once, offline). A capitalised known first name is a name, together with the capitalised
words and initials that follow it ("Sara J. Schwarz"). Names the list does not know are found
after cues that introduce a person: "my name is", "Dear", "Mr.", "Name:", a sign-off line
("Regards,\\n"). Weak cues ("I'm", "this is", "Hi") count only before a known first name or a
two-word name.

Census first names include English words ("Will", "May", "Hope", "Mark"); those, months, days
and product words ("Pro", "Max") never start a name, and a word followed by a number ("Aria 11")
is a model, not a person.
"""

from __future__ import annotations

import functools
import importlib.resources
import re

from slmkit.data.pii_patterns import LOWER, STREET_SUFFIX, UPPER

# Census first names that are mostly ordinary words: those a BPE vocabulary (SmolLM2's) holds as a
# more frequent lower-case word than a capitalised one, reviewed by hand; and months and days.
_WORD_NAMES = """
Ai Aide Al Alpha Amber An Angel Angle Art Aura Autumn Basil Bee Bell Bill Blossom Bo Brain Bud Buddy Bunny Candy
Carry Chance Charity Chase Cherish Cherry Chi Chin Christian Clay Cliff Coral Coy Crystal Dawn Delta Desire Destiny
Diamond Dot Dusty Earnest Echo Else Era Fairy Faith Fe Flora Forest Foster Gay Gene Ginger Glory Golden Grace Grant
Guy Ha Hang Harmony Hazel Herb Honey Hope Hue Hunter In Iris Ivory Ivy Jade Jewel Joy Junior Karma King Lady Lan
Lane Le Lean Li Liberty Loan Long Lore Love Ma Mac Major Man Manual Many Maple Marine Mark Marry Marvel Max May
Melody Mercy Meta Mi Miles Min Miss Moon My Noble Numbers Ok Olive Omega Pa Page Patience Pearl Penny Precious
Prince Princess Queen Rich Rocky Rose Royal Ruby Sage Sandy Scarlet Season See So Son Song Soon Spring Star Stormy
Summer Sun Sunny Sunshine Ta Temple Terra Tiny Un Velvet Violet Ward Will Willow Windy Winter Young
January February March April June July August September October November December
Monday Tuesday Wednesday Thursday Friday Saturday Sunday
"""
# Words that end a name: never a surname after a first name, never a name after a cue.
_NOT_NAME = """
A About After All Also Am An And Any Are As At Be Because Been Before But By Can Could Did Do Does For From Get Got
Had Has Have He Her Here Hi His How I If In Into Is It Its Just Me My No Not Now Of On Or Our Please She So Some
Sorry Than Thank Thanks That The Their Them Then There These They This Those To Too Up Us Very Was We Were What
When Where Which While Who Why Will With Would Yes Yet You Your Hello Hey Dear Regards Best Cheers Sincerely
Team Support Customer Service Services Sales Billing Help Desk Admin Manager Department Office Company Inc Ltd LLC
Corp Group Bank University College School Hospital Hotel Street Road Avenue Lane Drive City County State Order
Account Card Invoice Ticket Update App Store Pro Max Mini Plus Lite Ultra Air Edition Series Model Version Beta
Subject Re Fwd Sent Mr Mrs Ms Miss Dr Prof Sir Madam Apt Suite Unit Box
United New Upper Lower North South East West Central Saint San Santa Los Las Port Porto Mount Lake Fort Republic
Kingdom States Islands Island
"""
WORD_NAMES = frozenset(_WORD_NAMES.split())
NOT_NAME = frozenset(_NOT_NAME.split()) | WORD_NAMES

_TOKEN = rf"[{UPPER}][{LOWER}]++(?:[-'’][{UPPER}]?[{LOWER}]++)?"
_INITIAL = rf"[{UPPER}]\.?"
_PARTICLE = r"(?:van|von|de|da|del|der|ten|le|la|di|du)"
# A first word, then up to three more words or initials ("Faina D. Yefremova", "Willemine ten Pas").
_NAME_RUN = re.compile(
    # The look-behind comes after the first letter: a pattern that opens with a character class scans fast.
    rf"([{UPPER}](?<![\w'’-].)[{LOWER}]++(?:[-'’][{UPPER}]?[{LOWER}]++)?)(?![\w'’-])"
    rf"((?:[ \t]+(?:{_INITIAL}|{_PARTICLE}|{_TOKEN})(?![\w'’-])){{0,3}})"
)
_RUN_PART = re.compile(rf"{_INITIAL}(?![\w])|{_TOKEN}|\S+")
_STREET_WORD = re.compile(STREET_SUFFIX)
_FOLLOWED_BY_NUMBER = re.compile(r"[ \t]*[-#]?\d")
# Phrases a name follows, matched against the end of the text before a word (lower-cased, spaces
# collapsed, a space in front so that each phrase starts at a word boundary).
_STRONG_CUES = (
    " name is", " name was", " name's", " name:", " name?", " dear", " signed", " regards", " regards,",
    " sincerely", " sincerely,", " cheers", " cheers,", " best,", " contact person:", " --",
    " mr", " mr.", " mrs", " mrs.", " ms", " ms.", " mx", " mx.", " miss", " dr", " dr.", " prof", " prof.",
    " sir", " madam",
)  # fmt: skip
_WEAK_CUES = (
    " i'm", " i am", " this is", " hi", " hello", " hey", " thanks", " thanks,", " thank you,", " from", " from:",
    " called", " named",
)  # fmt: skip
# "Dear Lumora team": the words before these name an organisation or a place, not a person.
_GROUP_AFTER = re.compile(
    r"[ \t]+(?i:team|support|staff|service|services|customer|company|group|inc|ltd|llc|gmbh|corp|department|office"
    r"|store|shop|bank|university|college|school|hospital|hotel|airport|city|street|road|avenue)\b"
)


@functools.cache
def first_names() -> frozenset[str]:
    """The census first names (male and female), capitalised, without the ones that are words."""
    package = importlib.resources.files("names")
    found: set[str] = set()
    for file in ("dist.male.first", "dist.female.first"):
        for line in (package / file).read_text(encoding="utf-8").splitlines():
            if line.strip():
                found.add(line.split(maxsplit=1)[0].capitalize())
    return frozenset(found - WORD_NAMES)


def _take(words: str) -> int:
    """How many characters of `words` (the run after a first word) still belong to the name."""
    taken = 0
    for m in _RUN_PART.finditer(words):
        part = m.group()
        if part.rstrip(".") in NOT_NAME or (part.isupper() and len(part) > 2):
            break
        taken = m.end()
    return taken


def _signature(text: str, start: int, end: int) -> bool:
    """A line holding only a two- or three-word name near the end, after a blank line or last: a signature.

    Never the first line, so a product name standing alone in an answer field is not taken for one.
    """
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    if line_start == 0 or text[line_start:start].strip(" \t>-") or text[end:line_end].strip(" \t.,"):
        return False
    after_blank = not text[text.rfind("\n", 0, line_start - 1) + 1 : line_start].strip()
    last_line = not text[line_end:].strip()
    return (after_blank or last_line) and text.count("\n", line_end) <= 2


def _cue_before(text: str, start: int) -> tuple[bool, bool]:
    """Whether a strong and whether a weak cue ends right before `text[start]`."""
    before = text[max(0, start - 24) : start]
    tail = " " + " ".join(before.split()).lower()
    # "Thanks,\nPriya" signs a message; "Thanks, Priya" may thank anyone, so it is only a weak cue.
    signed = before.rstrip(" \t").endswith("\n") and tail.endswith((" thanks,", " thank you,"))
    return signed or tail.endswith(_STRONG_CUES), tail.endswith(_WEAK_CUES)


def find_names(text: str) -> list[tuple[int, int]]:
    """Spans of person names: known first names anywhere, unknown names after a cue."""
    known = first_names()
    found = []
    pos = 0
    while m := _NAME_RUN.search(text, pos):
        first, start = m.group(1), m.start()
        pos = m.end(1)  # a rejected first word may still be followed by a name: look again from there
        if first in NOT_NAME:
            continue
        strong, weak = (True, False) if first in known else _cue_before(text, start)
        if not (strong or weak or start == 0 or text[start - 1] in "\n\t >-"):
            continue  # most capitalised words: not a known name, after no cue, not starting a line
        end = m.end(1) + _take(m.group(2))
        if not strong and (end == m.end(1) or not (weak or _signature(text, start, end))):
            continue  # without a strong cue, an unknown word counts only as part of a two-word name
        if _FOLLOWED_BY_NUMBER.match(text, end) or _GROUP_AFTER.match(text, end):
            continue
        if _STREET_WORD.fullmatch(text[start:end].rsplit(None, 1)[-1]):
            continue  # "Elisabeth Parks", "Isaac Lodge": a street named after someone
        found.append((start, end))
        pos = end
    return found
