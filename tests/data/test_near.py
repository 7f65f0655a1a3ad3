"""MinHash near-duplicate detection: what pairs, what does not, and that it scales and repeats."""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
import time

import numpy as np
import pytest

from slmkit.data.near import BUCKET_CAP, MinHasher, band_layout, cross_pairs, near_pairs
from slmkit.data.normalize import normalize_text
from tests.conftest import EXAMPLE, REPO

TICKET = (
    "my laptop arrived with a cracked screen and the box was dented on one corner it was dropped in transit "
    "can you send a replacement or should i return it"
)
OTHERS = [
    "I was charged twice for order 123456, please refund the second payment.",
    "How do I change the email address on my account? The old one no longer exists.",
    "The bluetooth earbuds keep disconnecting every few minutes since the last update.",
    "Is express shipping available at weekends? Not urgent, just curious.",
]


def _hasher() -> MinHasher:
    return MinHasher(num_perm=64, shingle=3)  # the config defaults


def _pairs(texts: list[str], threshold: float) -> set[tuple[int, int]]:
    return {(int(i), int(j)) for i, j in near_pairs(_hasher().signatures(texts), threshold)}


def _vocabulary_texts(count: int, seed: int) -> list[str]:
    """Texts drawn from a small vocabulary, so many pairs share some shingles."""
    rng = random.Random(seed)
    words = ["order", "refund", "laptop", "screen", "late", "parcel", "charge", "twice", "account", "email"]
    words += ["please", "help", "broken", "box"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(8, 30))) for _ in range(count)]
    for k in range(0, count - 1, 5):  # and some edited copies
        edited = texts[k].split()
        edited[rng.randrange(len(edited))] = "changed"
        texts[k + 1] = " ".join(edited)
    return texts


def test_identical_texts_pair_whatever_the_case_spacing_and_punctuation():
    texts = [TICKET, TICKET.upper(), TICKET.replace(" ", "  ").replace("screen", "screen,") + "!", *OTHERS]
    assert _pairs(texts, 1.0) == {(0, 1), (0, 2), (1, 2)}


def test_a_one_word_edit_of_a_30_word_text_pairs_at_0_7():
    words = TICKET.split()
    assert len(words) == 30
    words[15] = "scratched"
    assert _pairs([TICKET, " ".join(words), *OTHERS], 0.7) == {(0, 1)}


def test_unrelated_texts_do_not_pair_even_at_a_low_threshold():
    assert _pairs([TICKET, *OTHERS], 0.3) == set()


def test_signatures_are_the_same_in_another_instance_and_another_process():
    texts = [TICKET, *OTHERS, "hi", ""]
    here = _hasher().signatures(texts)
    assert here.shape == (len(texts), 64) and here.dtype == np.uint32
    assert np.array_equal(here, _hasher().signatures(texts))
    script = (
        "import json, sys; from slmkit.data.near import MinHasher; "
        "print(json.dumps(MinHasher(64, 3).signatures(json.loads(sys.argv[1])).tolist()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(texts)], capture_output=True, text=True, check=True, env=env, cwd=REPO
    )
    assert np.array_equal(here, np.array(json.loads(out.stdout), dtype=np.uint32))
    assert not np.array_equal(here, MinHasher(64, 3, seed=2).signatures(texts))


def test_a_texts_signature_does_not_depend_on_its_batch_or_position():
    texts = _vocabulary_texts(600, seed=1)  # spans several internal blocks of shingles
    batch = _hasher().signatures(texts)
    for k in (0, 299, 599):
        assert np.array_equal(_hasher().signatures([texts[k]])[0], batch[k])

    order = list(range(len(texts)))
    random.Random(2).shuffle(order)
    shuffled = _hasher().signatures([texts[k] for k in order])
    assert np.array_equal(shuffled, batch[order])
    mapped = {tuple(sorted((order[i], order[j]))) for i, j in near_pairs(shuffled, 0.7)}
    assert mapped == {(int(i), int(j)) for i, j in near_pairs(batch, 0.7)}
    assert len(mapped) >= 50  # the edited copies are there


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9])
def test_near_pairs_returns_exactly_the_pairs_whose_estimate_reaches_the_threshold(threshold):
    sig = _hasher().signatures(_vocabulary_texts(300, seed=3))
    share = (sig[:, None, :] == sig[None, :, :]).mean(axis=2)
    expected = {(i, j) for i, j in itertools.combinations(range(len(sig)), 2) if share[i, j] >= threshold}
    assert {(int(i), int(j)) for i, j in near_pairs(sig, threshold)} == expected
    assert expected  # the check is not vacuous


@pytest.mark.parametrize("threshold", [0.6, 0.7, 0.8, 0.9])
def test_every_pair_just_at_the_threshold_is_found_however_its_differences_fall(threshold):
    rng = np.random.default_rng(5)
    base = rng.integers(0, 2**32 - 1, size=(300, 64), dtype=np.uint32)
    copies = base.copy()
    differing = 64 - int(np.ceil(threshold * 64 - 1e-9))  # the most a pair at the threshold may have
    for row in copies:
        slots = rng.choice(64, size=differing, replace=False)
        row[slots] = rng.integers(0, 2**32 - 1, size=differing, dtype=np.uint32)
    pairs = near_pairs(np.concatenate([base, copies]), threshold)
    assert {(int(i), int(j)) for i, j in pairs} == {(k, k + 300) for k in range(300)}


def test_the_band_layout_puts_every_pair_at_the_threshold_in_a_shared_band():
    for threshold in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0):
        bands, rows = band_layout(64, threshold)
        assert bands * rows <= 64
        assert bands > 64 - int(np.ceil(threshold * 64 - 1e-9))  # more bands than allowed mismatches
    assert band_layout(64, 0.8) == (16, 4)


def test_short_and_empty_texts():
    texts = ["hi", "Hi!", "hi there", "", "   ", "???", "???"]
    # "hi" is shorter than a shingle: it is one shingle of its own; empty texts pair with nothing.
    assert _pairs(texts, 0.9) == {(0, 1), (5, 6)}


def test_a_thousand_identical_texts_stay_linear_and_connected():
    texts = [TICKET] * 1000 + OTHERS
    sig = _hasher().signatures(texts)
    started = time.perf_counter()
    pairs = near_pairs(sig, 0.8)
    assert time.perf_counter() - started < 5
    assert len(pairs) < 2 * len(texts)  # all pairs would be 499,500
    assert _components(pairs, 1000) == 1
    assert pairs.max() < 1000  # the others stay out

    copies_in_b = cross_pairs(sig[:1000], np.concatenate([sig[:3], sig[1000:]]), 0.8)
    assert set(copies_in_b[:, 1].tolist()) == {0, 1, 2}
    assert len(copies_in_b) <= 6


def test_buckets_up_to_the_cap_get_every_pair():
    texts = [TICKET] * BUCKET_CAP
    assert len(near_pairs(_hasher().signatures(texts), 0.8)) == BUCKET_CAP * (BUCKET_CAP - 1) // 2


def test_cross_pairs_are_the_pairs_between_the_two_sets():
    sig = _hasher().signatures(_vocabulary_texts(200, seed=4))
    a, b = sig[0::2], sig[1::2]  # row k of `a` is text 2k, row k of `b` is text 2k + 1
    expected = set()
    for i, j in near_pairs(sig, 0.7):
        if i % 2 != j % 2:
            even, odd = (i, j) if i % 2 == 0 else (j, i)
            expected.add((int(even) // 2, int(odd) // 2))
    assert {(int(i), int(j)) for i, j in cross_pairs(a, b, 0.7)} == expected
    assert expected


def test_planted_near_duplicates_of_the_example_are_found_without_false_alarms():
    ids, texts = [], []
    for line in (EXAMPLE / "data" / "tickets.jsonl").read_bytes().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("subject"), str) and isinstance(row.get("body"), str):
            ids.append(row["ticket_id"])
            texts.append(normalize_text(row["subject"] + "\n\n" + row["body"]))
    planted = {
        frozenset(pair) for pair in json.loads((EXAMPLE / "data" / "planted.json").read_text())["near_duplicates"]
    }
    keys = [" ".join(text.casefold().split()) for text in texts]

    found = set()
    for i, j in near_pairs(_hasher().signatures(texts), 0.7):
        pair = frozenset((ids[i], ids[j]))
        if pair in planted:
            found.add(pair)
        else:  # anything else flagged must be an exact copy
            assert keys[i] == keys[j], (ids[i], ids[j])
    assert len(found) >= 24


def _components(pairs: np.ndarray, n: int) -> int:
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in pairs:
        parent[root(int(i))] = root(int(j))
    return len({root(x) for x in range(n)})
