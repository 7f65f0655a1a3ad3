"""Near duplicates: MinHash signatures over word shingles and LSH banding, all in numpy.

Two tickets that differ by a greeting, a signature or one word teach the model the same thing
and, split apart, leak a gold answer into training. Exact dedup cannot see them; the share of
word n-grams two texts have in common (Jaccard similarity) can, and MinHash estimates it from a
fixed-size signature per text.

Everything here runs on whole arrays: shingle hashes for a block of texts at once, all
permutations in one product, banding by sorting band hashes. A row-at-a-time MinHash cannot reach
the builder's throughput. Signatures depend only on the text and the seed (no Python `hash()`),
so they are equal across processes and runs.

Banding is chosen so that recall is exact: with more bands than the mismatching slots a pair at
the threshold may have, every pair whose estimate reaches the threshold shares at least one
whole band (pigeonhole), and every candidate is then checked against the full signature. The
only exception is a bucket of more than `BUCKET_CAP` rows sharing one band: those are linked as a
chain (neighbours in signature order) instead of all pairs, so work stays linear; the chain keeps
the connected components that dedup acts on.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Iterator, Sequence

import numpy as np

# Rows sharing one band beyond this many are chained, not paired all-to-all (1000 copies would
# otherwise be half a million pairs per band).
BUCKET_CAP = 64
# Work-array budgets: shingles hashed per step (x num_perm uint64) and candidate pairs verified per step.
_SHINGLE_BLOCK = 1 << 13
_VERIFY_BLOCK = 1 << 17
_TEXT_BLOCK_CHARS = 1 << 22

# Words are runs of anything but spaces and punctuation (ASCII, and the common Unicode marks).
_ASCII_PUNCTUATION = bytes(32 if chr(c) in "!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~" else c for c in range(256))
_UNICODE_PUNCTUATION = "\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u00ab\u00bb\u00bf\u00a1"
_SEPARATOR = "\x01"
_SEPARATOR_BYTES = _SEPARATOR.encode()
_SEPARATOR_CRC = zlib.crc32(_SEPARATOR_BYTES)
_EMPTY = np.uint32(0xFFFFFFFF)
_U64 = np.uint64
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)


class MinHasher:
    """MinHash signatures of word shingles; equal inputs and seed give equal signatures anywhere.

    A text is casefolded and split into words at spaces and punctuation (ASCII marks and common
    Unicode quotes and dashes), so "Refund." and "refund!" are the same word. Shingles are
    `shingle` consecutive words; a shorter text is one shingle of all its words; a text of only
    punctuation is one shingle of itself. A text that is empty or only spaces has no shingles and
    gets the all-0xFFFFFFFF signature, which `near_pairs` and `cross_pairs` never pair.
    """

    def __init__(self, num_perm: int, shingle: int, seed: int = 1) -> None:
        if num_perm < 1 or shingle < 1:
            raise ValueError(f"num_perm and shingle must be >= 1 (got {num_perm}, {shingle})")
        self.num_perm = num_perm
        self.shingle = shingle
        self.seed = seed
        # Multiply-add-shift hashing of 32-bit shingle hashes: h(x) = ((a*x + b) mod 2^64) >> 32,
        # a odd. Constants come from SHAKE-256 so they never depend on numpy's generators.
        self._mult = _constants(seed, "mult", num_perm) | _U64(1)
        self._add = _constants(seed, "add", num_perm)
        self._position = _constants(seed, "position", shingle) | _U64(1)

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), num_perm) uint32 signatures; row i belongs to texts[i]."""
        out = np.full((len(texts), self.num_perm), _EMPTY, dtype=np.uint32)
        for lo, hi in _text_blocks(texts):
            hashes, counts = self._shingle_hashes(texts[lo:hi])
            self._minhash(hashes, counts, out[lo:hi])
        return out

    def _shingle_hashes(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """All shingle hashes of the block in text order (uint64 < 2^32), and how many each text has."""
        n = self.shingle
        word_hash, lengths = _word_hashes(texts)
        ends = np.cumsum(lengths)
        left = np.repeat(ends, lengths) - np.arange(len(word_hash))  # words from here to the text's end
        starts_shingle = left >= n
        short = np.flatnonzero((lengths > 0) & (lengths < n))
        starts_shingle[(ends - lengths)[short]] = True  # a short text is one shingle of all its words

        padded = np.zeros(len(word_hash) + n, dtype=np.uint64)
        padded[: len(word_hash)] = word_hash
        combined = padded[: len(word_hash)] * self._position[0]
        for j in range(1, n):
            combined += padded[j : j + len(word_hash)] * self._position[j]
        combined = combined[starts_shingle]
        counts = np.where(lengths >= n, lengths - n + 1, np.minimum(lengths, 1))
        if len(short):  # their sums above ran into the next text's words: redo them with their own only
            where = (np.cumsum(counts) - counts)[short]
            begin = (ends - lengths)[short]
            redo = np.zeros(len(short), dtype=np.uint64)
            for j in range(n):
                inside = lengths[short] > j
                redo[inside] += padded[begin[inside] + j] * self._position[j]
            combined[where] = redo
        return _finalize(combined), counts

    def _minhash(self, hashes: np.ndarray, counts: np.ndarray, out: np.ndarray) -> None:
        """Minimum of every permutation over each text's shingles, written into `out` (rows = texts)."""
        owner = np.repeat(np.arange(len(counts)), counts)
        mult = self._mult[:, None]
        add = self._add[:, None]
        for lo in range(0, len(hashes), _SHINGLE_BLOCK):
            hi = min(lo + _SHINGLE_BLOCK, len(hashes))
            # (num_perm, shingles): reduceat along the contiguous axis is ~10x faster than across rows.
            values = mult * hashes[lo:hi]
            values += add
            rows = owner[lo:hi]
            segment = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
            # The top 32 bits are monotone in the full value, so take the minimum first, then shift.
            lowest = (np.minimum.reduceat(values, segment, axis=1) >> _U64(32)).astype(np.uint32).T
            targets = rows[segment]
            out[targets] = np.minimum(out[targets], lowest)


def near_pairs(signatures: np.ndarray, threshold: float) -> np.ndarray:
    """(m, 2) int64 pairs i < j whose estimated Jaccard (share of equal slots) is >= threshold.

    Sorted by (i, j). Recall is exact except inside buckets larger than `BUCKET_CAP`, which are
    chained (see the module docstring); connected components are kept either way.
    """
    sig = _check_signatures(signatures, threshold)
    side = np.zeros(len(sig), dtype=np.int8)
    return _banded_pairs(sig, side, threshold, cross=False)


def cross_pairs(a: np.ndarray, b: np.ndarray, threshold: float) -> np.ndarray:
    """(m, 2) int64 pairs (i, j): row i of `a` and row j of `b` reach the threshold. Sorted by (i, j).

    Pairs inside `a` or inside `b` are not reported. In a bucket larger than `BUCKET_CAP`, each
    row of `b` is paired with its nearest rows of `a` in signature order instead of all of them.
    """
    sig_a = _check_signatures(a, threshold)
    sig_b = _check_signatures(b, threshold)
    if sig_a.shape[1] != sig_b.shape[1]:
        raise ValueError(f"signatures differ in width ({sig_a.shape[1]} vs {sig_b.shape[1]} permutations)")
    stacked = np.concatenate([sig_a, sig_b])
    side = np.r_[np.zeros(len(sig_a), dtype=np.int8), np.ones(len(sig_b), dtype=np.int8)]
    pairs = _banded_pairs(stacked, side, threshold, cross=True)
    pairs[:, 1] -= len(sig_a)
    return pairs


def band_layout(num_perm: int, threshold: float) -> tuple[int, int]:
    """(bands, rows per band): the widest bands that still guarantee every pair at the threshold meets.

    A pair whose estimate reaches the threshold differs in at most `num_perm - ceil(t * num_perm)`
    slots; with more bands than that, one band is untouched. Wider bands mean fewer chance candidates.
    """
    mismatches = num_perm - _needed(num_perm, threshold)
    rows = max(r for r in range(1, num_perm + 1) if num_perm // r > mismatches)
    return num_perm // rows, rows


def _banded_pairs(sig: np.ndarray, side: np.ndarray, threshold: float, *, cross: bool) -> np.ndarray:
    n, num_perm = sig.shape
    bands, rows = band_layout(num_perm, threshold)
    needed = _needed(num_perm, threshold)
    empty = np.flatnonzero((sig == _EMPTY).all(axis=1))
    band_mult = _constants(0, "band", rows) | _U64(1)
    found: list[np.ndarray] = []
    for band in range(bands):
        keys = np.zeros(n, dtype=np.uint64)
        for k in range(rows):
            keys += sig[:, band * rows + k].astype(np.uint64) * band_mult[k]
        keys = _mix(keys)
        keys[empty] = np.arange(len(empty), dtype=np.uint64)  # a bucket of its own each: never paired
        for left, right in _bucket_pairs(keys, sig, side, cross=cross):
            for lo in range(0, len(left), _VERIFY_BLOCK):
                i, j = left[lo : lo + _VERIFY_BLOCK], right[lo : lo + _VERIFY_BLOCK]
                keep = np.count_nonzero(sig[i] == sig[j], axis=1) >= needed
                if keep.any():
                    found.append(_encode(i[keep], j[keep], n))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    codes = np.unique(np.concatenate(found))
    return np.stack([codes // n, codes % n], axis=1)


def _bucket_pairs(
    keys: np.ndarray, sig: np.ndarray, side: np.ndarray, *, cross: bool
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Candidate (left, right) row index arrays of rows sharing a band key, one offset at a time."""
    order = np.argsort(keys)
    ordered = keys[order]
    run_start = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    run_size = np.diff(np.r_[run_start, len(keys)])
    size = np.repeat(run_size, run_size)
    start = np.repeat(run_start, run_size)
    position = np.arange(len(keys))
    after = start + size - 1 - position  # members of the same bucket after this one

    # Small buckets: every pair, by offset within the bucket.
    active = position[(size > 1) & (size <= BUCKET_CAP)]
    offset = 1
    while len(active):
        active = active[after[active] >= offset]
        left, right = order[active], order[active + offset]
        if cross:
            mixed = side[left] != side[right]
            left, right = left[mixed], right[mixed]
        yield left, right
        offset += 1

    big = position[size > BUCKET_CAP]
    if not len(big):
        return
    # Large buckets: order rows by whole signature (equal ones side by side) and then by index, so
    # every band chains them alike; link neighbours. Across sides, link each row of `b` to the
    # nearest row of `a` before and after it.
    members = order[big]
    order[big] = members[np.lexsort((members, _full_hash(sig, members), start[big]))]
    if not cross:
        chained = big[after[big] >= 1]
        yield order[chained], order[chained + 1]
        return
    is_a = side[order] == 0
    last_a = np.maximum.accumulate(np.where(is_a, position, -1))
    next_a = np.minimum.accumulate(np.where(is_a, position, len(keys))[::-1])[::-1]
    of_b = big[~is_a[big]]
    for neighbour in (last_a[of_b], next_a[of_b]):
        same = (neighbour >= start[of_b]) & (neighbour < start[of_b] + size[of_b])
        yield order[neighbour[same]], order[of_b[same]]


def _encode(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    """One int64 per pair, smaller index first (in a cross stack that is always the row of `a`)."""
    return np.minimum(i, j) * n + np.maximum(i, j)


def _full_hash(sig: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """A 64-bit hash of whole signature rows: equal signatures, equal hash."""
    acc = np.zeros(len(rows), dtype=np.uint64)
    block = sig[rows]
    for k in range(sig.shape[1]):
        acc = _mix(acc ^ block[:, k].astype(np.uint64))
    return acc


def _word_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """crc32 of every word of every text (uint64, text after text) and each text's word count.

    The block is casefolded, stripped of punctuation and split in one pass over one joined string
    (a few C calls instead of a regex per text: this is the hot loop). Texts are joined by a
    separator word that the hashes then locate.
    """
    glue = f" {_SEPARATOR} "
    joined = glue.join(texts)
    if joined.count(_SEPARATOR) != max(len(texts) - 1, 0):  # a text holds the separator itself
        texts = [text.replace(_SEPARATOR, " ") for text in texts]
        joined = glue.join(texts)
    joined = joined.casefold()
    for mark in _UNICODE_PUNCTUATION:
        joined = joined.replace(mark, " ")
    tokens = joined.encode().translate(_ASCII_PUNCTUATION).split()
    hashes = np.fromiter(map(zlib.crc32, tokens), dtype=np.uint64, count=len(tokens))
    maybe = np.flatnonzero(hashes == _SEPARATOR_CRC)
    separators = maybe[[tokens[k] == _SEPARATOR_BYTES for k in maybe]] if len(maybe) else maybe
    bounds = np.r_[-1, separators, len(tokens)]
    lengths = np.diff(bounds) - 1
    words = np.delete(hashes, separators)

    # A text of only punctuation ("???", "...") is one word of itself rather than empty.
    bare = [k for k in np.flatnonzero(lengths == 0).tolist() if texts[k].strip()]
    if bare:
        positions = (np.cumsum(lengths) - lengths)[bare]
        values = [zlib.crc32(texts[k].strip().casefold().encode()) for k in bare]
        words = np.insert(words, positions, np.array(values, dtype=np.uint64))
        lengths[bare] = 1
    return words, lengths


def _text_blocks(texts: Sequence[str]) -> Iterator[tuple[int, int]]:
    """(lo, hi) ranges of texts of about `_TEXT_BLOCK_CHARS` characters each, to bound memory."""
    ends = np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)))
    lo = 0
    while lo < len(texts):
        base = ends[lo - 1] if lo else 0
        hi = int(np.searchsorted(ends, base + _TEXT_BLOCK_CHARS, side="right"))
        hi = max(hi, lo + 1)
        yield lo, hi
        lo = hi


def _finalize(values: np.ndarray) -> np.ndarray:
    """Mix 64-bit shingle sums down to well-spread 32-bit hashes (kept as uint64)."""
    return _mix(values) >> _U64(32)


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit affects every output bit."""
    values = values ^ (values >> _U64(30))
    values *= _MIX1
    values ^= values >> _U64(27)
    values *= _MIX2
    values ^= values >> _U64(31)
    return values


def _constants(seed: int, label: str, count: int) -> np.ndarray:
    digest = hashlib.shake_256(f"slmkit-minhash:{seed}:{label}".encode()).digest(8 * count)
    return np.frombuffer(digest, dtype="<u8").astype(np.uint64)


def _needed(num_perm: int, threshold: float) -> int:
    """Equal slots a pair needs: the smallest count whose share is >= threshold."""
    return max(1, math.ceil(threshold * num_perm - 1e-9))


def _check_signatures(signatures: np.ndarray, threshold: float) -> np.ndarray:
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1] (got {threshold})")
    sig = np.asarray(signatures)
    if sig.ndim != 2 or sig.dtype != np.uint32:
        raise ValueError(f"signatures must be a 2-D uint32 array (got {sig.dtype} with shape {sig.shape})")
    return sig
