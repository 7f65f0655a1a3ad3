"""Pattern recognizers for structured personal data: a regex finds candidates, a check confirms them.

Each `find_<kind>(text)` returns `(start, end)` pairs, possibly overlapping other kinds; the
scrubber in `pii.py` decides between kinds. A candidate is kept only when something beyond its
shape says it is real: a checksum (Luhn for cards, mod-97 for IBANs), a valid range (IPv4
octets, SSN areas), a known prefix (API keys) or a cue next to it ("call me on", "Address:").
Shape alone matches order numbers, dates, prices and versions, which are not personal and
which a model must still learn to read.

Most rows carry none of this, so each recognizer is gated by a check cheaper than its regex
pass: a character or marker that must be present, tested here or by the caller (`pii.py` runs
the number recognizers only when `has_long_number`).
"""

from __future__ import annotations

import ipaddress
import re

Found = list[tuple[int, int]]

# Capitalised words in any Latin, Greek or Cyrillic alphabet ("Søndergade", "Μεγάλη").
UPPER = re.escape("".join(c for c in map(chr, range(0x41, 0x530)) if c.isupper()))
LOWER = re.escape("".join(c for c in map(chr, range(0x61, 0x530)) if c.islower()))

# --- e-mail and URLs --------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+%-])[\w][\w.+%-]{0,63}@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?![\w-])")


def find_email(text: str) -> Found:
    if "@" not in text:
        return []
    return [m.span() for m in _EMAIL.finditer(text)]


_URL = re.compile(r"\b(?:(?:https?|ftps?|wss?)://|www\.)[^\s<>\"'`]+")
# A password in the authority part, or a query/fragment parameter that carries a credential.
_URL_CREDENTIAL = re.compile(
    r"^[a-z]+://[^/?#\s@:]+:[^/?#\s@]+@"
    r"|[?&#;](?:[\w.-]*[_.-])?(?:token|key|apikey|sig|signature|secret|password|passwd|pwd|pass|auth"
    r"|authorization|credentials?|session|sessionid|sid|jwt|accesstoken|authtoken|code_verifier)=[^&#\s]",
    re.IGNORECASE,
)


def find_url(text: str) -> Found:
    if "://" not in text and "www." not in text:
        return []
    found = []
    for m in _URL.finditer(text):
        url = m.group().rstrip(".,;:!?)]}'\"")
        if _URL_CREDENTIAL.search(url):
            found.append((m.start(), m.start() + len(url)))
    return found


# --- secrets -----------------------------------------------------------------------------

_SECRET = re.compile(
    r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z]+ )*PRIVATE KEY-----"
    r"|\bsk-(?:proj-|live-|test-|ant-)?[A-Za-z0-9_-]{20,}"
    r"|\b[spr]k_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{22,}"
    r"|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"
    r"|\bAIza[0-9A-Za-z_-]{35}"
    r"|\bglpat-[A-Za-z0-9_-]{20,}"
    r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
)
# A value after a label that names a secret: "password: Tr0ub4dor&3", "api_key=9f8a...".
_LABELLED_SECRET = re.compile(
    r"(?i)\b(?:api[ _-]?key|secret(?:[ _-]?key)?|client[ _-]?secret|(?:access|auth|api|bearer|refresh)[ _-]?token"
    r"|token|password|passwd|passphrase|pwd|private[ _-]?key)\b[\"']?\s*(?:is|=|:|:=)\s*[\"']?"
    r"([^\s\"',;]{6,})"
)


def _looks_like_secret(value: str) -> bool:
    """Letters mixed with digits or symbols ("Tr0ub4dor&3", "9f8a77c1e2"), not words ("incorrect", "not-working")."""
    has_letter = any(c.isalpha() for c in value)
    has_digit = any(c.isdigit() for c in value)
    has_symbol = any(not c.isalnum() and c not in "-._" for c in value)
    return has_letter and (has_digit or has_symbol)


def find_secret(text: str, lowered: str) -> Found:
    """Keys with a known prefix anywhere; random-looking values after a secret's label. `lowered` is `text.lower()`."""
    found = []
    # Plain `in` tests, written out: far cheaper than a regex pass over every row.
    t = text
    if len(t) >= 20 and (
        "_" in t or "sk-" in t or "AKIA" in t or "ASIA" in t or "xox" in t or "AIza" in t or "eyJ" in t or "-----" in t
    ):
        found = [m.span() for m in _SECRET.finditer(text)]
    t = lowered
    if len(t) >= 10 and (
        "passw" in t or "token" in t or "secret" in t or "api" in t or "pwd" in t or "private" in t or "passphrase" in t
    ):
        for m in _LABELLED_SECRET.finditer(text):
            value = m.group(1).rstrip(".!?)")
            if _looks_like_secret(value):
                found.append((m.start(1), m.start(1) + len(value)))
    return found


# --- numbers: cards, SSNs, phones --------------------------------------------------------

# A run of digit groups, optionally with a "+" country code, a "(0)" and an area code in
# parentheses. It may not touch a word, an id prefix ("ORD-"), a price or another number, so
# the run found is the whole number, never a piece of one.
_NUMBER = re.compile(
    r"(?<![\w+@/#$€£¥:=-])(?<!\d[.,])"
    r"\+?(?:\(0\)[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d+(?:(?:[ .-]| - )(?:\(0\)[ .-]?)?\d+)*"
    r"(?![\w@]|[ .,-]?\d)"
)
_GROUPS = re.compile(r"\d+")
_SSN_SHAPE = re.compile(r"(?!000|666|9)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}")
_INTERNATIONAL_00 = re.compile(r"00[1-9]\d{0,2}[ .-]")  # 0044 20 ..., the "+" as dialled in Europe
_SSN_DASHES = re.compile(r"\d{3}-\d{2}-\d{4}")
_NANP = re.compile(r"\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}")
_PHONE_CUE = re.compile(
    r"(?i)\b(?:phone|ph|tel|telephone|mobile|mob|cell|cellphone|fax|whats ?app|sms|text(?:ed)? me|call(?:ed|ing)?"
    r"|ring|dial(?:led)?|answer(?:ing|ed)?|reach(?:ed)?|contact|messages?|landline|hotline|ext)\b\W*(?:\w+\W+){0,3}$"
)
_PHONE_CUE_AFTER = re.compile(r"\W{0,3}(?:fax|tel|phone|mobile|cell|office|home|work|landline)\b", re.IGNORECASE)
# The number right after one of these words is an identifier, whatever it looks like.
_ID_BEFORE = re.compile(
    r"(?i)\b(?:order|invoice|ticket|case|ref|reference|tracking|account|acct|serial|sku|model|part|transaction"
    r"|confirmation|booking|reservation|customer|member|policy|claim|licen[cs]e|passport|po|id|iban|ssn|rma)"
    r"(?:\s*(?:no\.?|number|num|#|id))?\W{0,3}$"
)
# The start of an account number ("GB83 WEST "): the digits after it are its tail, valid or not.
_IBAN_HEAD = re.compile(r"(?<![^\W_])[A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]{4})*[ -]?$")
_MONEY_AFTER = re.compile(r"\s?(?:usd|eur|gbp|chf|dollars?|euros?|pounds?|%)", re.IGNORECASE)
_CARD_CUE = re.compile(r"(?i)\b(?:card|cc|visa|mastercard|maestro|amex|debit|credit)\b\W*(?:\w+\W+){0,3}$")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_date(groups: list[str]) -> bool:
    if len(groups) != 3:
        return False
    a, b, c = (int(g) for g in groups)
    if len(groups[0]) == 4:
        return 1900 <= a <= 2100 and 1 <= b <= 12 and 1 <= c <= 31
    if len(groups[2]) in (2, 4) and (len(groups[2]) == 2 or 1900 <= c <= 2100):
        return 1 <= a <= 31 and 1 <= b <= 31 and min(a, b) <= 12
    return False


def _card_end(text: str, start: int, run: str, cued: bool) -> int | None:
    """End of the longest leading group sequence that is a Luhn-valid card number, if any."""
    if run[0] in "+(":
        return None
    pieces = re.split(r"([ -])", run)
    shortest = 12 if cued else 13  # Maestro numbers run from 12 digits; say so only next to a card cue
    for last in range(len(pieces) - 1, -1, -2):
        digits = "".join(pieces[: last + 1 : 2])
        if shortest <= len(digits) <= 19 and len(set(digits)) > 1 and luhn_ok(digits):
            return start + len("".join(pieces[: last + 1]))
    return None


def _phone_ok(text: str, start: int, end: int, run: str, groups: list[str]) -> bool:
    digits = sum(len(g) for g in groups)
    if not 7 <= digits <= 15 or _is_date(groups) or _MONEY_AFTER.match(text, end):
        return False
    if run[0] == "+" or _INTERNATIONAL_00.match(run):
        return digits >= 8
    if _SSN_DASHES.fullmatch(run):
        return False  # shaped like an SSN (with an area no SSN has): not how anyone writes a phone number
    before = text[max(0, start - 40) : start]
    if _ID_BEFORE.search(before) or _IBAN_HEAD.search(before):
        return False
    if ("(" in run and digits >= 8) or _NANP.fullmatch(run):
        return True
    separators = set(re.findall(r"[ .-]", run))
    even = len(separators) == 1 and all(len(g) >= 2 for g in groups)
    if even and ((len(groups) >= 3 and digits >= 9) or (len(groups) >= 4 and digits >= 8)):
        return True
    if even and groups[0][0] == "0" and len(groups[0]) <= 5 and digits >= 9:
        return True  # a national number with its trunk 0: 020 7946 0958, 07700 900123
    return bool(_PHONE_CUE.search(before) or _PHONE_CUE_AFTER.match(text, end))


# Seven or more characters of digits and separators: without one, no card, phone, SSN, IBAN or IP.
has_long_number = re.compile(r"\d[\d .()/:-]{5,}\d").search


def find_numbers(text: str, kinds: frozenset[str]) -> list[tuple[int, int, str]]:
    """Cards, SSNs and phone numbers: one pass over the digit runs, each run classified once."""
    found: list[tuple[int, int, str]] = []
    for m in _NUMBER.finditer(text):
        run, start, end = m.group(), m.start(), m.end()
        if len(run) < 7:
            continue
        groups = _GROUPS.findall(run)
        if "SSN" in kinds and _SSN_SHAPE.fullmatch(run):
            found.append((start, end, "SSN"))
            continue
        if "CARD" in kinds and sum(map(len, groups)) >= 12:
            card_end = _card_end(text, start, run, bool(_CARD_CUE.search(text[max(0, start - 40) : start])))
            if card_end is not None:
                found.append((start, card_end, "CARD"))
                continue
        if "PHONE" in kinds and _phone_ok(text, start, end, run, groups):
            found.append((start, end, "PHONE"))
    return found


_SSN_LABELLED = re.compile(
    r"(?i)\b(?:ssn|social security(?: number| no\.?| #)?)\W{0,4}((?!000|666|9)\d{3}(?!00)\d{2}(?!0000)\d{4})\b"
)


def find_ssn_labelled(text: str) -> Found:
    """Nine digits without dashes count as an SSN only right after the word."""
    lowered = text.lower()
    if "ssn" not in lowered and "social" not in lowered:
        return []
    return [m.span(1) for m in _SSN_LABELLED.finditer(text)]


# --- IBAN --------------------------------------------------------------------------------

# Length of the IBAN in each country that issues them (the ISO 13616 registry).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25,
    "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip
_IBAN = re.compile(r"(?<![^\W_])[A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]){10,32}")


def iban_ok(compact: str) -> bool:
    compact = compact.upper()
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def find_iban(text: str) -> Found:
    found = []
    pos = 0
    while m := _IBAN.search(text, pos):
        run = m.group()
        pos = m.start() + 2
        length = IBAN_LENGTHS.get(run[:2].upper())
        if length is None:
            continue
        # The regex runs on into the next words; the country's length says where the IBAN ends.
        end, taken = 0, 0
        while end < len(run) and taken < length:
            taken += run[end].isalnum()
            end += 1
        compact = "".join(c for c in run[:end] if c.isalnum())
        if taken == length and not text[m.start() + end : m.start() + end + 1].isalnum() and iban_ok(compact):
            found.append((m.start(), m.start() + end))
            pos = m.start() + end
    return found


# --- IP addresses ------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?![\w]|\.\d)")
_VERSION_BEFORE = re.compile(r"(?i)(?:\bv|\bversion|\bver\.?|\bbuild|\brelease|\bfirmware|\bfw)\s*$")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")


def find_ip(text: str) -> Found:
    found = [
        m.span() for m in _IPV4.finditer(text) if not _VERSION_BEFORE.search(text, max(0, m.start() - 12), m.start())
    ]
    if "::" in text or text.count(":") >= 7:
        for m in _IPV6.finditer(text):
            if len(_GROUPS.findall(m.group())) + sum(c.isalpha() for c in m.group()) < 3:
                continue
            try:
                ipaddress.IPv6Address(m.group())
            except ValueError:
                continue
            found.append(m.span())
    return found


# --- street addresses --------------------------------------------------------------------

_CAP = rf"[{UPPER}][{LOWER}'’.-]*+"
_PARTICLE = r"(?:de|da|do|dos|das|del|della|delle|dei|degli|di|du|des|la|le|les|al|el|van|von|der|den|ten|y|i)"
# USPS standard street suffixes and common abbreviations (Publication 28, appendix C).
_STREET_SUFFIXES_TEXT = (
    "Street St Str Avenue Ave Road Rd Lane Ln Boulevard Blvd Drive Dr Way Court Ct Place Pl Terrace Ter Square Sq "
    "Parkway Pkwy Highway Hwy Circle Cir Crescent Cres Close Grove Gardens Row Hill Walk Mews Parade Alley Trail "
    "Plaza Quay Wharf Esplanade Embankment Bypass Causeway Center Centre Common Corner Cove Creek Crest Crossing "
    "Estate Expressway Extension Falls Ferry Field Fork Fort Freeway Gateway Glen Green Harbor Harbour Haven "
    "Heights Hollow Island Isle Junction Knoll Landing Loop Manor Meadow Mill Mount Orchard Oval Park Pass "
    "Path Pike Point Port Ridge Route Shore Spur Station Summit Trace Turnpike Union Valley View Village "
    "Vista Well Cliff"
)
STREET_SUFFIXES = _STREET_SUFFIXES_TEXT.split()
STREET_SUFFIX = rf"(?:{'|'.join(STREET_SUFFIXES)})s?\b\.?"
# European and Nordic street words, glued to the name ("Søndergade") or written after it.
_EU_STREET_ENDINGS_TEXT = (
    "straße strasse str. gasse graben weg vej vænget stræde vägen väg gade gaden gate gata gatan veien vegen stien "
    "terrasse tie katu kuja polku laan straat steeg gracht plein kade allee platz stræti straeti braut vegur utca u. "
    "út útja krt. körút rkp. tér ulica ul."
)
EU_STREET_ENDINGS = _EU_STREET_ENDINGS_TEXT.split()
_EU_SUFFIX = rf"(?i:{'|'.join(map(re.escape, sorted(EU_STREET_ENDINGS, key=len, reverse=True)))})"
# Only whole words may end a street name when glued to it: "Søndergade", never "Jul." for "ul.".
_EU_GLUED = (
    rf"(?i:{'|'.join(sorted((e for e in EU_STREET_ENDINGS if '.' not in e and len(e) > 2), key=len, reverse=True))})"
)
# Words that come before the street name in Romance and Slavic languages ("Rua do Arenque 1634").
_STREET_PREFIXES_TEXT = (
    "Rua Rue Via C/ Viale Vicolo Calle Carrer Avenida Avenue Av. Avda. Piazza Piazzale Strada Largo Travessa Alameda "
    "Paseo Plaza Praça Chemin Allée Impasse Quai Ulica ul. Camino Carretera Rambla"
)
STREET_PREFIXES = _STREET_PREFIXES_TEXT.split()
_PREFIX = rf"(?:{'|'.join(map(re.escape, STREET_PREFIXES))})"
_UNIT_WORDS = frozenset(("apt", "apartment", "suite", "ste", "unit", "box", "psc", "cmr", "apo", "fpo", "dpo"))


def _spellings(words: list[str]) -> frozenset[str]:
    """Each word as it can stand in split text: plural, abbreviated with a dot, before a comma."""
    return frozenset(w + end for w in words for end in ("", "s", ".", ",", "s,", ".,"))


_UNIT_CASES = [c for w in sorted(_UNIT_WORDS) for c in (w, w.capitalize(), w.upper())]  # apt, Apt, APT
_STREET_WORDS_AFTER = _spellings(STREET_SUFFIXES + STREET_PREFIXES)  # "12 Main St", "31 Rue ..."
_STREET_WORDS_BEFORE = _spellings(STREET_PREFIXES + _UNIT_CASES)  # "Rua ... 12", "Apt. 4", "PSC 0413,"
_EU_ENDINGS = tuple(EU_STREET_ENDINGS)
_NAME_WORDS = rf"(?:(?:{_CAP}|\d{{1,3}}(?:st|nd|rd|th)|{_PARTICLE})\s+){{0,3}}"
_UNIT = r"(?:,?\s+(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Flat|Floor|Fl\.|Room|Rm\.?|#)\s*[\w-]{1,6})*"
_CITY_ZIP = (
    rf"(?:,?\s*\n?\s*{_CAP}(?:\s+{_CAP}){{0,2}}(?:,?\s+[A-Z]{{2}})?,?\s+"
    r"(?:\d{5}(?:-\d{4})?|\d{4}|[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2})\b)?"
)
_HOUSE = r"(?<![\w#$€£.,/-])\d{1,6}[A-Za-z]?(?:-\d{1,4})?\s+(?:\d{1,6}\s+)?"
_NUMBER_AFTER = r"\s+\d{1,5}[a-zA-Z]?\b\.?"
# Addresses that start with the house number ("1668 Glyn St", "137 Avenue Teboulbi", "68 Kingsway").
_HOUSE_FIRST = re.compile(
    "(?:"
    rf"{_HOUSE}(?:(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West)\.?\s+)?{_NAME_WORDS}"
    rf"(?:{_CAP}|\d{{1,3}}(?:st|nd|rd|th))\s+{STREET_SUFFIX}(?:\s+(?:N|S|E|W|NE|NW|SE|SW)\b)?"
    rf"|{_HOUSE}[{UPPER}][{LOWER}]+(?:way|gate)\b"
    rf"|{_HOUSE}{_PREFIX}\s+{_NAME_WORDS}{_CAP}(?:{_NUMBER_AFTER})?"
    rf"){_UNIT}{_CITY_ZIP}"
)
# Addresses that start with a word: the street and then its number ("Puruntie 82", "Rua do Arenque 1634"),
# post boxes, military addresses, a flat or suite.
_WORD_FIRST = re.compile(
    "(?:"
    rf"(?:{_HOUSE})?(?:{_CAP}\s+){{0,2}}(?:[{UPPER}][{LOWER}]*{_EU_GLUED}|{_CAP}\s+{_EU_SUFFIX}){_NUMBER_AFTER}"
    rf"|{_PREFIX}\s+{_NAME_WORDS}{_CAP}{_NUMBER_AFTER}"
    r"|P\.?\s?O\.?\s?Box\s+\d{1,6}"
    r"|(?:PSC|CMR|Unit)\s+\d{1,5},?\s+Box\s+\d{1,5}(?:\s+(?:APO|FPO|DPO)\s+A[AEP]\s+\d{5})?"
    rf"|(?:(?:USNS|USNV|USS|USCGC)\s+{_CAP}(?:\s+{_CAP})?\s+)?(?:APO|FPO|DPO)\s+A[AEP]\s+\d{{5}}"
    r"|(?:Apt\.?|Apartment|Suite)\s*#?\d{1,5}[A-Za-z]?\b"
    rf"){_UNIT}{_CITY_ZIP}"
)
_WORD = re.compile(r"\S+")
# "Address: ...", "my address is ...": the rest of the sentence, when it holds a number.
_ADDRESS_VALUE = re.compile(
    r"(?:es)?\b(?: is|:| -)\s*([^\n?!]*?\d[^\n?!]*?)(?=[.?!]?\s*$|[.?!]\s|\n\s*\n|[?!]|\Z)",
    re.IGNORECASE | re.MULTILINE,
)
_NOT_POSTAL = ("mail ", "ip ", "mac ", "web ", "wallet ")  # "e-mail address: ...", "IP address: ..."
_HAS_WORD = re.compile(rf"[{UPPER}{LOWER}]{{3,}}")


# A number standing alone (not part of a date, an id, a price or a time): maybe a house number.
_LONE_NUMBER = re.compile(r"\d(?<![\w#$€£/:.,-]\d)\d{0,5}[A-Za-z]?(?![\w%/:-]|[.,]\d)")


def _street_near(text: str, start: int, end: int) -> bool:
    """Whether a street word sits next to the number at `text[start:end]`: worth running the address patterns.

    Set lookups on the few words around the number; this runs for every lone number in every row.
    """
    before = text[max(0, start - 40) : start].split()[-5:]
    if before and (
        not _STREET_WORDS_BEFORE.isdisjoint(before) or before[-1].rstrip(",;:").lower().endswith(_EU_ENDINGS)
    ):
        return True
    after = text[end : end + 60]
    words = after.split(None, 6)[:6]
    if not _STREET_WORDS_AFTER.isdisjoint(words):
        return True
    return ("way" in after or "gate" in after) and any(
        w[:1].isupper() and w.rstrip(".,;:").endswith(("way", "gate")) for w in words
    )


def _address_at(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The address around the number at `text[start:end]`, tried from its house number, then from the words before."""
    hit = _HOUSE_FIRST.match(text, start)
    if hit is not None:
        return hit.span()
    low = max(0, start - 60)
    for word in list(_WORD.finditer(text, low, start))[-5:]:  # farthest first: the longest address wins
        if word.start() == low and low > 0 and not text[low - 1].isspace():
            continue  # a piece of a word cut by the window
        word_first = _WORD_FIRST.match(text, word.start())
        if word_first is not None and word_first.end() >= end:
            return word_first.span()
    return None


def find_address(text: str, lowered: str) -> Found:
    """Street addresses, post boxes and labelled addresses. `lowered` is `text.lower()`."""
    found: Found = []
    # The address patterns are slow; they are tried only at numbers with a street word beside them.
    for m in _LONE_NUMBER.finditer(text):
        if (found and m.start() < found[-1][1]) or not _street_near(text, m.start(), m.end()):
            continue
        span = _address_at(text, m.start(), m.end())
        if span is not None:
            found.append(span)
    at = lowered.find("address")
    while at >= 0:
        if not (at and lowered[at - 1].isalnum()) and not lowered[max(0, at - 7) : at].endswith(_NOT_POSTAL):
            labelled = _ADDRESS_VALUE.match(text, at + 7)
            value = labelled.group(1).rstrip(" ,;") if labelled else ""
            if labelled and 4 <= len(value) <= 120 and _HAS_WORD.search(value):
                found.append((labelled.start(1), labelled.start(1) + len(value)))
        at = lowered.find("address", at + 7)
    return found
