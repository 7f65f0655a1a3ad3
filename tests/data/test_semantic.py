"""Semantic duplicates on the real all-MiniLM-L6-v2: offline loading, scores, and the all-pairs search."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from slmkit.data.semantic import EMBEDDING_DIM, Embedder, cross_similar, similar_pairs

CHARGED = "I was charged twice for my order, please refund the second payment."
PARAPHRASE = "My card shows two identical payments for one purchase. Can you give one of them back?"
UNRELATED = "How do I turn off the newsletter? I couldn't find it in the settings."


@pytest.fixture(scope="module")
def embedder():
    """The real model, loaded while every network connection is refused and recorded."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)  # recorded: a library may swallow the error and carry on
        raise OSError("network is off in this test")

    embedder = Embedder(batch_size=4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", refuse)
        patch.setattr(socket, "create_connection", refuse)
        patch.setattr(socket.socket, "connect", refuse)
        embedder.embed(["load the model now"])
    assert attempts == []
    return embedder


def test_a_paraphrase_scores_higher_than_an_unrelated_text(embedder):
    emb = embedder.embed([CHARGED, PARAPHRASE, UNRELATED, CHARGED])
    assert emb.shape == (4, EMBEDDING_DIM) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    paraphrase, unrelated, identical = emb[0] @ emb[1], emb[0] @ emb[2], emb[0] @ emb[3]
    assert paraphrase > unrelated + 0.2
    assert identical == pytest.approx(1.0, abs=1e-5)


def test_rows_come_back_in_input_order_whatever_the_lengths(embedder):
    texts = [UNRELATED * 3, "hi", CHARGED, PARAPHRASE + " " + UNRELATED, "ok", CHARGED * 2]
    together = embedder.embed(texts)  # batches of 4, sorted by length inside
    alone = np.stack([embedder.embed([text])[0] for text in texts])
    assert np.allclose(together, alone, atol=1e-4)
    assert embedder.embed([]).shape == (0, EMBEDDING_DIM)


def test_similar_pairs_finds_real_duplicates_among_random_vectors(embedder):
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((500, EMBEDDING_DIM)).astype(np.float32)
    emb = np.concatenate([noise / np.linalg.norm(noise, axis=1, keepdims=True), embedder.embed([CHARGED, CHARGED])])
    emb[[3, 500]] = emb[[500, 3]]  # one copy in the middle, one at the end
    pairs, scores = similar_pairs(emb, 0.95, block=64)
    assert pairs.tolist() == [[3, 501]]
    assert scores[0] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("block", [7, 64, 2048])
def test_similar_pairs_equals_a_brute_force_search(block):
    emb = _clustered(150, seed=1)
    cosine = emb @ emb.T
    expected = [[i, j] for i in range(150) for j in range(i + 1, 150) if cosine[i, j] >= 0.9]
    pairs, scores = similar_pairs(emb, 0.9, block=block)
    assert pairs.tolist() == expected
    assert np.allclose(scores, [cosine[i, j] for i, j in expected], atol=1e-6)
    assert len(expected) > 20


def test_cross_similar_equals_a_brute_force_search():
    a, b = _clustered(90, seed=2), _clustered(70, seed=2)[::-1]
    cosine = a @ b.T
    expected = [[i, j] for i in range(90) for j in range(70) if cosine[i, j] >= 0.9]
    pairs, scores = cross_similar(a, b, 0.9, block=16)
    assert pairs.tolist() == expected
    assert np.allclose(scores, cosine[pairs[:, 0], pairs[:, 1]], atol=1e-6)
    assert len(expected) > 20


def test_a_threshold_of_one_still_matches_identical_vectors():
    emb = _clustered(10, seed=3)
    pairs, _ = similar_pairs(np.concatenate([emb, emb[:1]]), 1.0)
    assert pairs.tolist() == [[0, 10]]


def _clustered(n: int, seed: int) -> np.ndarray:
    """Unit vectors around n // 10 centres, so some pairs are close and most are not."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n // 10, EMBEDDING_DIM))
    emb = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.standard_normal((n, EMBEDDING_DIM))
    return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
