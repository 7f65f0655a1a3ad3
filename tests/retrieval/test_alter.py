"""The text edits behind counterfactual and name-swap training rows: which name a question asks about,
which occurrence of a value belongs to it, and numbers moved without breaking the words around them."""

from __future__ import annotations

import random

import pytest

from slmkit.retrieval import alter

WARRANTY = (
    "The PulseBuds Pro comes with a warranty of 1 year from the date of purchase.\n\n"
    "The PulseBuds Lite comes with a warranty of 1 year from the date of purchase.\n\n"
    "The VoltDock 7-in-1 comes with a warranty of 3 years from the date of purchase."
)
RETURNS = (
    "The return window for audio (PulseBuds Pro, PulseBuds Lite, Nimbus Smart Speaker) is 30 days from delivery.\n\n"
    "The return window for wearables (Orbit Smartwatch S2, Lumen 27 Monitor) is 30 days from delivery."
)
SHIPPING = (
    "Standard delivery to Germany takes 1 to 2 working days.\n\n"
    "Standard delivery to the Netherlands takes 2 to 3\nworking days."
)


@pytest.mark.parametrize(
    ("question", "text", "name"),
    [
        ("How long is the warranty on the PulseBuds Lite?", WARRANTY, "PulseBuds Lite"),
        ("I changed my mind about the VoltDock 7-in-1. Until when can I return it?", WARRANTY, "VoltDock 7-in-1"),
        ("Is the Orbit Smartwatch S2 covered, and for how long?", RETURNS, "Orbit Smartwatch S2"),
        ("Shipping time to the Netherlands?", SHIPPING, "Netherlands"),
        ("I am ordering from Germany. How long until it arrives?", SHIPPING, "Germany"),
        # A capitalised word that only opens a sentence is no name; a name the chunk lacks is none either.
        ("Quick question: How long does delivery take?", SHIPPING, None),
        ("How long is the warranty on the Aria Tablet 11?", WARRANTY, None),
    ],
)
def test_the_question_name_is_the_longest_name_its_chunk_holds(question, text, name):
    assert alter.question_name(question, text) == name


def test_names_of_a_section_are_the_capitalised_runs_broken_by_punctuation():
    assert alter.names(RETURNS) == [
        "PulseBuds Pro", "PulseBuds Lite", "Nimbus Smart Speaker", "Orbit Smartwatch S2", "Lumen 27 Monitor",
    ]  # fmt: skip
    assert alter.names(SHIPPING) == ["Germany", "Netherlands"]  # "Standard" only opens sentences


def test_the_value_changed_is_the_one_in_the_named_sentence():
    # Both products have "1 year": only the Lite's changes, though the Pro's stands closer before its name.
    changed = alter.change_value(WARRANTY, "1 year", 2, "PulseBuds Lite")
    assert changed is not None
    assert changed == WARRANTY.replace(
        "PulseBuds Lite comes with a warranty of 1 year", "PulseBuds Lite comes with a warranty of 3 years"
    )
    # The value wraps a line in the chunk: found all the same, and its line break kept.
    assert alter.change_value(SHIPPING, "2 to 3 working days", 4, "Netherlands") == SHIPPING.replace(
        "2 to 3\nworking", "6 to 7\nworking"
    )
    # Without a name, every occurrence changes, so the context never holds the old value as the answer.
    assert alter.change_value(RETURNS, "30 days", -5, None) == RETURNS.replace("30 days", "25 days")
    assert alter.change_value(RETURNS, "45 days", 1, None) is None


@pytest.mark.parametrize(
    ("value", "amount", "changed"),
    [
        ("18 months", 6, "24 months"),
        ("1 year", 1, "2 years"),
        ("2 years", -1, "1 year"),
        ("1 to 2 working days", 2, "3 to 4 working days"),
        ("within 5 working days", -2, "within 3 working days"),
        ("59 euros", -10, "49 euros"),
        ("4.90 euros", 3, "4.90 euros"),  # a decimal is left as it is
    ],
)
def test_numbers_move_together_and_the_unit_follows_the_count(value, amount, changed):
    assert alter.shift_numbers(value, amount) == changed


def test_shift_amounts_are_seeded_non_zero_and_keep_numbers_positive():
    draws = [alter.shift_amount("1 to 2 working days", random.Random(seed)) for seed in range(200)]
    assert 0 not in draws and all(1 + d >= 1 for d in draws if d is not None)
    assert set(draws) == {1, 2}  # within about half the largest number, never below 1
    assert alter.shift_amount("18 months", random.Random(7)) == alter.shift_amount("18 months", random.Random(7))
    assert alter.shift_amount("free of charge", random.Random(7)) is None


def test_a_name_is_replaced_as_a_whole_word_only():
    text = "The HaloCam 2K ships today (HaloCam 2K, black); HaloCam 2Ks and MyHaloCam 2K do not exist."
    assert alter.replace_name(text, "HaloCam 2K", "Lumen 27 Monitor") == (
        "The Lumen 27 Monitor ships today (Lumen 27 Monitor, black); HaloCam 2Ks and MyHaloCam 2K do not exist."
    )


def test_dropping_a_name_drops_its_sentences_and_keeps_the_rest_as_it_was():
    assert (
        alter.drop_sentences(SHIPPING, "Germany") == "Standard delivery to the Netherlands takes 2 to 3\nworking days."
    )
    assert alter.drop_sentences(WARRANTY, "PulseBuds Lite") == WARRANTY.replace(
        "The PulseBuds Lite comes with a warranty of 1 year from the date of purchase.\n\n", ""
    )
    assert alter.drop_sentences(RETURNS, "Lumen 27 Monitor") == RETURNS.split("\n\n")[0]


def test_a_chunk_whose_heading_names_the_thing_is_all_about_it_and_goes_whole():
    text = "It comes with a warranty of 18 months from the date of purchase."
    assert alter.drop_name(text, "HaloCam 2K", "Warranty > HaloCam 2K") == ""
    # Under a heading that names something else, only the sentences naming it go.
    assert alter.drop_name(WARRANTY, "PulseBuds Lite", "Warranty periods") == alter.drop_sentences(
        WARRANTY, "PulseBuds Lite"
    )
