"""PII removal: what is replaced, what is left alone, and how replacements line up across a row."""

from __future__ import annotations

import itertools
import json

import pytest

from slmkit.config import PII_ENTITIES, PiiConfig
from slmkit.data.pii import PiiScrubber, surviving_canaries
from slmkit.data.pii_eval import LabelledText, evaluate_pii, load_presidio, merge_adjacent
from slmkit.errors import DataError
from tests.conftest import SHARED_DATA

ALL = PiiScrubber(PiiConfig(entities=list(PII_ENTITIES), ner="names"))


def _found(text: str, scrubber: PiiScrubber = ALL) -> list[tuple[str, str]]:
    return [(s.kind, text[s.start : s.end]) for s in scrubber.find(text)]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("Reply to Jane.Doe+tickets@Example.co.uk please", "EMAIL", "Jane.Doe+tickets@Example.co.uk"),
        ("call me on +44 20 7946 0958 after 5", "PHONE", "+44 20 7946 0958"),
        ("my number: (555) 010-2345.", "PHONE", "(555) 010-2345"),
        ("Text 555-010-2345 if urgent", "PHONE", "555-010-2345"),
        ("US desk +1-202-555-0143", "PHONE", "+1-202-555-0143"),
        ("London office 020 7946 0958", "PHONE", "020 7946 0958"),
        ("Berlin: +49 30 901820", "PHONE", "+49 30 901820"),
        ("Phone:\n467 3395", "PHONE", "467 3395"),
        ("card 4111 1111 1111 1111 exp 09/28", "CARD", "4111 1111 1111 1111"),
        ("charged to 4111-1111-1111-1111 twice", "CARD", "4111-1111-1111-1111"),
        ("IBAN ES91 2100 0418 4502 0005 1332, thanks", "IBAN", "ES91 2100 0418 4502 0005 1332"),
        ("pay to gb82west12345698765432 today", "IBAN", "gb82west12345698765432"),
        ("my SSN is 123-45-6789.", "SSN", "123-45-6789"),
        ("social security number 123456789", "SSN", "123456789"),
        ("login from 203.0.113.182 at night", "IP", "203.0.113.182"),
        ("v6 address 2001:db8::8a2e:370:7334 too", "IP", "2001:db8::8a2e:370:7334"),
        ("open https://example.com/reset?token=abc123XYZ now", "URL", "https://example.com/reset?token=abc123XYZ"),
        ("see https://bob:hunter2@host.example.com/x.", "URL", "https://bob:hunter2@host.example.com/x"),
        ("key sk-proj-abcdEFGH1234ijklMNOP5678qrst leaked", "SECRET", "sk-proj-abcdEFGH1234ijklMNOP5678qrst"),
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "SECRET", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
        ("aws AKIAIOSFODNN7EXAMPLE", "SECRET", "AKIAIOSFODNN7EXAMPLE"),
        ("slack xoxb-123456789012-abcdefABCDEF", "SECRET", "xoxb-123456789012-abcdefABCDEF"),
        ("password: Tr0ub4dor&3", "SECRET", "Tr0ub4dor&3"),
        ("api_key=9f8a77c1e2b34d5f", "SECRET", "9f8a77c1e2b34d5f"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N", "SECRET",
         "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N"),
        ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----", "SECRET",
         "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"),
        ("I live at 12 Main St, Apt 4B, Springfield, IL 62704", "ADDRESS", "12 Main St, Apt 4B, Springfield, IL 62704"),
        ("Ship to 1600 Pennsylvania Avenue NW, Washington, DC 20500 please", "ADDRESS",
         "1600 Pennsylvania Avenue NW, Washington, DC 20500"),
        ("Lieferung an Villacher Strasse 89 bitte", "ADDRESS", "Villacher Strasse 89"),
        ("Please return to P.O. Box 149 in case", "ADDRESS", "P.O. Box 149"),
        ("My address is 14 Kingsway, Millbrook 84970. Thanks", "ADDRESS", "14 Kingsway, Millbrook 84970"),
        ("Hi, my name is Maria Gonzalez and I need help", "NAME", "Maria Gonzalez"),
        ("Dear Mr. Okonkwo,\nthe parcel is late.", "NAME", "Okonkwo"),
        ("It broke again.\n\nRegards,\nPriya Raman", "NAME", "Priya Raman"),
        ("Thanks, Tom!", "NAME", "Tom"),
        ("Sarah J. Connolly will collect it", "NAME", "Sarah J. Connolly"),
    ],
)  # fmt: skip
def test_each_kind_is_found_whole(text, kind, value):
    assert _found(text) == [(kind, value)]


@pytest.mark.parametrize(
    "text",
    [
        "Order ORD-123456 placed on 2024-01-15, delivered 15/01/2024 at 10:30:00.",
        "Total $1,299.00 (EUR 1.299,00), 20% off, order #12345678 and order 87654321.",
        "Firmware version 2.10.4, build 10.0.19041.1, app v1.2.3.4, released in 2023.",
        "Card 4111 1111 1111 1112 was declined.",  # fails the Luhn check
        "IBAN GB83 WEST 1234 5698 7654 32 bounced.",  # wrong check digits
        "Not SSNs: 000-12-3456, 666-12-3456, 912-34-5678.",
        "Not an IP: 999.1.1.1, and 10:30:45 is a time.",
        "Docs at https://example.com/docs?page=2&lang=en and www.example.org/help.",
        "My password is incorrect and the token expired.",
        "Subject: PulseBuds Pro left earbud dead",
        "Will you ship in May? Mark it as urgent. The Aria 11 tablet is in its Grace period.",
        "Dear Lumora team, the Glide Wireless Mouse stopped working after 3 days.",
        "Top 100 Indie Tracks on my playlist; the restaurant on Jul. 13 for 6 people.",
    ],
)
def test_lookalikes_are_left_alone(text):
    assert _found(text) == []


def test_spans_are_sorted_and_never_overlap():
    text = (
        "Jane <jane@example.com>, +44 20 7946 0958, 12 Main St, card 4111111111111111, "
        "https://u:p@example.com/x?token=jane@example.com, 192.168.0.1"
    )
    spans = ALL.find(text)
    assert [s.kind for s in spans] == ["NAME", "EMAIL", "PHONE", "ADDRESS", "CARD", "URL", "IP"]
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))


def test_one_value_gets_one_placeholder_across_fields_and_output():
    scrubber = PiiScrubber(PiiConfig())
    texts = {
        "subject": "Refund to Jane@Example.com",
        "body": "Send it to jane@example.com, not bob@example.org. Call +44 20 7946 0958 or +44-20-7946-0958.",
    }
    output = {"contact": "jane@example.com", "notes": ["bob@example.org", {"phone": "+44 20 7946 0958"}], "n": 3}
    new_texts, new_output, counts = scrubber.scrub_row(texts, output)
    assert new_texts == {
        "subject": "Refund to <EMAIL_1>",
        "body": "Send it to <EMAIL_1>, not <EMAIL_2>. Call <PHONE_1> or <PHONE_1>.",
    }
    assert new_output == {"contact": "<EMAIL_1>", "notes": ["<EMAIL_2>", {"phone": "<PHONE_1>"}], "n": 3}
    assert counts == {"EMAIL": 5, "PHONE": 3}
    assert output["contact"] == "jane@example.com"  # the caller's row is not modified


def test_numbering_starts_again_in_every_row():
    scrubber = PiiScrubber(PiiConfig())
    first = scrubber.scrub_row({"input": "a@example.com and b@example.com"}, None)
    second = scrubber.scrub_row({"input": "b@example.com"}, None)
    assert first[0]["input"] == "<EMAIL_1> and <EMAIL_2>"
    assert second[0]["input"] == "<EMAIL_1>"


def test_an_output_written_as_json_text_is_scrubbed_too():
    output = json.dumps({"reply_to": "jane@example.com"})
    _, new_output, _ = PiiScrubber(PiiConfig()).scrub_row({"input": "from jane@example.com"}, output)
    assert json.loads(new_output) == {"reply_to": "<EMAIL_1>"}


def test_keep_strings_stay_and_the_rest_goes():
    scrubber = PiiScrubber(
        PiiConfig(keep=["support@lumora.example", "Lumora"], entities=["EMAIL", "NAME"], ner="names")
    )
    texts, _, counts = scrubber.scrub_row(
        {"input": "Dear Lumora, write to support@lumora.example or me: ann@x.example"}, {}
    )
    assert texts["input"] == "Dear Lumora, write to support@lumora.example or me: <EMAIL_1>"
    assert counts == {"EMAIL": 1}


def test_only_the_configured_kinds_are_replaced():
    text = "jane@example.com, +44 20 7946 0958, Maria Gonzalez"
    assert [k for k, _ in _found(text, PiiScrubber(PiiConfig(entities=["PHONE"])))] == ["PHONE"]
    # NAME without a name backend finds nothing; the default has no NAME at all.
    assert "NAME" not in {k for k, _ in _found(text, PiiScrubber(PiiConfig(entities=["NAME"], ner="none")))}
    assert "NAME" not in PiiConfig().entities
    disabled = PiiScrubber(PiiConfig(enabled=False))
    assert disabled.scrub_row({"input": text}, {"a": text}) == ({"input": text}, {"a": text}, {})


def test_canaries_are_found_ignoring_case_and_spacing():
    canaries = ["CANARY-7f3a-91", "sk-canary 0000 1111", "never-there"]
    text = "debug dump: canary-7F3A-91 and SK-CANARY00001111"
    assert surviving_canaries(text, canaries) == ["CANARY-7f3a-91", "sk-canary 0000 1111"]
    assert surviving_canaries(text, []) == []
    assert surviving_canaries(text, ["  "]) == []


def test_a_planted_secret_does_not_survive_scrubbing():
    canary = "sk-live-CanaryCanary0123456789abcdef"
    scrubber = PiiScrubber(PiiConfig())
    texts, output, _ = scrubber.scrub_row({"input": f"my key is {canary}"}, {"note": f"use {canary}"})
    assert surviving_canaries(json.dumps([texts, output]), [canary]) == []


def test_scoring_merges_address_pieces_and_counts_foreign_types_as_neutral():
    text = (
        "Jo lives at 12 Main St, Apt 4, Springfield; mail jo@example.com, IP 10.0.0.1, see https://a.example/?token=x1"
    )
    main_st, apt, site = text.index("12 Main St"), text.index("Apt 4"), text.index("https")

    def at(value: str, label: str) -> tuple[int, int, str]:
        return text.index(value), text.index(value) + len(value), label

    gold = [
        (main_st, main_st + 10, "ADDRESS"),
        (apt, apt + 5, "ADDRESS"),
        at("Springfield", "GPE"),
        at("jo@example.com", "EMAIL"),
        at("10.0.0.1", "PHONE"),  # mislabelled on purpose
        (site, site + 18, "DOMAIN_NAME"),
    ]
    merged = merge_adjacent(text, gold)
    assert (main_st, apt + 5, "ADDRESS") in merged and len(merged) == 5
    report = evaluate_pii(PiiScrubber(PiiConfig()), [LabelledText(text, tuple(merged))])
    kinds = report["kinds"]
    assert kinds["ADDRESS"]["recall"] == 1.0 and kinds["EMAIL"]["recall"] == 1.0
    assert kinds["PHONE"]["recall"] == 0.0 and kinds["PHONE"]["any_recall"] == 1.0
    assert kinds["IP"]["precision"] == 0.0  # it overlaps gold of another kind slmkit scrubs: wrong
    assert kinds["URL"]["neutral"] == 1 and kinds["URL"]["precision"] is None  # only a foreign type: neither
    assert report["foreign"] == {"GPE": {"gold": 1, "covered": 0}, "DOMAIN_NAME": {"gold": 1, "covered": 1}}


def test_loading_a_folder_without_the_files_says_so(tmp_path):
    with pytest.raises(DataError, match=r"spans_train\.jsonl"):
        load_presidio(tmp_path)


PRESIDIO = SHARED_DATA / "presidio_pii"
# Measured on the Presidio research set (1,193 texts) minus a margin: a drop below is a regression.
FLOORS = {  # kind: (recall, precision); measured 1.00/1.00 for the checksummed kinds
    "EMAIL": (0.95, 0.95),
    "PHONE": (0.92, 0.92),
    "CARD": (0.95, 0.95),
    "IBAN": (0.95, 0.95),
    "SSN": (0.95, 0.95),
    "IP": (0.88, 0.95),
    "ADDRESS": (0.75, 0.95),  # measured 0.81 / 1.00
    "NAME": (0.48, 0.93),  # measured 0.53 / 0.98: a first-name list and cues, no model
}


@pytest.mark.skipif(not PRESIDIO.is_dir(), reason="shared Presidio data not present")
def test_recall_and_precision_on_the_presidio_set_stay_above_their_floors():
    report = evaluate_pii(ALL, load_presidio(PRESIDIO))
    low = {
        kind: (round(s["recall"], 3), round(s["precision"], 3))
        for kind, s in report["kinds"].items()
        if kind in FLOORS and (s["recall"] < FLOORS[kind][0] or s["precision"] < FLOORS[kind][1])
    }
    assert low == {}, f"below the floor (recall, precision): {low}"
    assert report["any_recall"] >= 0.65
