"""Input drift on real data: detection power when traffic moves, false alarms when it does not.

The test is the one `slmkit serve` and `slmkit monitor` run: MMD^2 between the window's
all-MiniLM-L6-v2 embeddings (stored int8, as requests are) and 500 embedded training inputs,
RBF kernel at the reference's median distance, 1000 permutations, the window capped at
monitor.drift.max_window, and drift called only when the p-value survives Holm's correction
across a window's three tests (the worst case for the input test: p x 3 < alpha = 0.01) and
MMD^2 clears its floor (monitor.drift.min_input_mmd2).

    .venv/bin/python bench/drift_power.py [--data snips hwu64 it_tickets] [--replays 60]

Data (../shared/data, or $SLMKIT_SHARED_DATA): each set is split by label. Some labels are held
out of training entirely: they are the "new traffic". The reference is 500 training inputs of
the other labels; unshifted traffic is drawn from the rest of those labels (never the
reference rows). Three kinds of shifted traffic replace a share of a window's requests:
- new labels: requests of the held-out labels (a product or kind of request never seen);
- label mix: one known label's share raised from its usual one (the pool's) to share + (1 - share)
  x usual, drawn from the same unshifted pool (nothing new in the inputs, only the mix moved; the
  label test would see it too, here only MMD^2 is judged);
- typos: known-label requests (never in the reference or the pool) with two adjacent letters
  swapped in 30% of their words of four letters or more (a noisier channel upstream).
Sets:
- snips: voice-assistant requests; SearchScreeningEvent and RateBook never seen in training;
  the mix shift adds GetWeather.
- hwu64: home-assistant requests, 64 intents; the transport, takeaway and cooking scenarios
  never seen; the mix shift adds the general scenario (affirm, joke, repeat, ...).
- it_tickets: IT service-desk tickets (lower-cased, stop words removed); the Purchase queue new;
  the mix shift adds Hardware.

Targets: power >= 0.9 at 300 requests, false alarms <= 5% over at least 50 unshifted replays.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

SHARED = Path(os.environ.get("SLMKIT_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
# held_out and mix name labels, or HWU64 scenarios (the part of the label before "_")
SETS: dict[str, dict[str, Any]] = {
    "snips": {"held_out": ("SearchScreeningEvent", "RateBook"), "mix": ("GetWeather",), "key": "intent"},
    "hwu64": {"held_out": ("transport", "takeaway", "cooking"), "mix": ("general",), "key": "intent"},
    "it_tickets": {"held_out": ("Purchase",), "mix": ("Hardware",), "key": "queue"},
}
SHIFTS = (("new", (0.1, 0.2, 0.5)), ("mix", (0.2, 0.5)), ("typos", (0.2, 0.5)))
SIZES = (100, 300, 1000)
REFERENCE = 500
TYPO_POOL = 1000  # known-label requests rewritten with typos
TYPO_RATE = 0.3  # share of the words (4+ letters) that get two adjacent letters swapped
TESTS_PER_WINDOW = 3  # label, confidence, input: Holm's first step divides alpha by 3
OTHER_FLOORS = (0.0, 0.0005, 0.001, 0.002)  # the same replays judged with other effect floors


def load(name: str) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for split in ("train", "test"):
        with (SHARED / name / f"{split}.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                texts.append(row["input"])
                labels.append(json.loads(row["output"])[SETS[name]["key"]])
    return texts, labels


def matches(label: str, names: tuple[str, ...]) -> bool:
    return any(label == name or label.startswith(f"{name}_") for name in names)


def typos(text: str, rng: random.Random) -> str:
    """Swap two adjacent interior letters in a share of the longer words, as a hurried typist does."""
    words = text.split(" ")
    for i, word in enumerate(words):
        if len(word) >= 4 and word.isalpha() and rng.random() < TYPO_RATE:
            j = rng.randrange(1, len(word) - 2)
            words[i] = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
    return " ".join(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--replays", type=int, default=60, help="replays per cell (>= 50)")
    parser.add_argument("--pool", type=int, default=5000, help="unshifted requests embedded per set")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="requests per window")
    args = parser.parse_args()

    from slmkit.config import DriftConfig
    from slmkit.monitor.embedding import InputEmbedder, Reference, build_reference, dequantize, quantize
    from slmkit.monitor.stats import mmd_test

    cfg = DriftConfig()
    alpha, floor, cap = cfg.alpha, cfg.min_input_mmd2, cfg.max_window
    embed = InputEmbedder()
    print(
        f"decision: p x {TESTS_PER_WINDOW} < {alpha:g} (Holm, worst case) and MMD^2 >= {floor:g}; "
        f"window capped at the latest {cap}; {cfg.permutations} permutations; {args.replays} replays per cell"
    )
    rows: list[tuple[str, str, list[str]]] = []
    for name in args.data:
        began = time.perf_counter()
        spec = SETS[name]
        texts, labels = load(name)
        rng = random.Random(13)
        known = [i for i, label in enumerate(labels) if not matches(label, spec["held_out"])]
        new = [i for i, label in enumerate(labels) if matches(label, spec["held_out"])]
        rng.shuffle(known)
        rng.shuffle(new)
        reference_rows, pool_rows = known[:REFERENCE], known[REFERENCE : REFERENCE + args.pool]
        typo_rows = known[REFERENCE + args.pool : REFERENCE + args.pool + min(TYPO_POOL, args.pool)]
        new_rows = new[: args.pool]
        reference = build_reference(name, [texts[i] for i in reference_rows], embed, size=REFERENCE)
        pool = dequantize(quantize(embed([texts[i] for i in pool_rows])))
        sources = {
            "new": dequantize(quantize(embed([texts[i] for i in new_rows]))),
            "typos": dequantize(quantize(embed([typos(texts[i], rng) for i in typo_rows]))),
        }
        mix_idx = np.array([j for j, i in enumerate(pool_rows) if matches(labels[i], spec["mix"])])
        rest_idx = np.array([j for j, i in enumerate(pool_rows) if not matches(labels[i], spec["mix"])])
        mix_base = len(mix_idx) / len(pool_rows)
        embedded = time.perf_counter() - began
        print(
            f"\n{name}: reference {reference.size} training inputs of "
            f"{len({label for label in labels if not matches(label, spec['held_out'])})} labels; "
            f"unshifted pool {len(pool)}; new-label pool {len(sources['new'])} ({', '.join(spec['held_out'])}); "
            f"typo pool {len(sources['typos'])}; {', '.join(spec['mix'])} is {mix_base:.0%} of the unshifted pool; "
            f"embedded in {embedded:.0f}s; bandwidth {reference.bandwidth:.3f}",
            flush=True,
        )
        null_effects: dict[int, list[float]] = {}

        def replay(
            n: int,
            kind: str,
            share: float,
            seed: int,
            pool: np.ndarray = pool,
            sources: dict[str, np.ndarray] = sources,
            mix_idx: np.ndarray = mix_idx,
            rest_idx: np.ndarray = rest_idx,
            mix_base: float = mix_base,
            reference: Reference = reference,
        ) -> tuple[bool, bool, float]:
            r = np.random.default_rng(seed)
            k = round(share * n)
            if kind == "mix":  # the label's share goes from its usual one to share + (1 - share) x usual
                m = round(n * (share + (1 - share) * mix_base))
                parts = [pool[r.choice(mix_idx, m, replace=False)], pool[r.choice(rest_idx, n - m, replace=False)]]
            else:
                shifted = sources.get(kind, pool[:0])
                parts = [pool[r.choice(len(pool), n - k, replace=False)]]
                if k:
                    parts.append(shifted[r.choice(len(shifted), k, replace=False)])
            window = np.vstack(parts)
            window = window[r.permutation(len(window))][-cap:]
            test = mmd_test(
                window, reference.embeddings, bandwidth=reference.bandwidth, permutations=cfg.permutations, seed=seed
            )
            significant = test.p_value * TESTS_PER_WINDOW < alpha
            return significant and test.effect >= floor, significant, test.effect

        shifts = [("none", 0.0)] + [(kind, share) for kind, shares in SHIFTS for share in shares]
        for index, (kind, share) in enumerate(shifts):
            if kind == "none":
                label = "none (false alarms)"
            elif kind == "new":
                label = f"new: {', '.join(spec['held_out'])} at {share:.0%}"
            elif kind == "mix":
                label = f"mix: {', '.join(spec['mix'])} {mix_base:.0%} -> {share + (1 - share) * mix_base:.0%}"
            else:
                label = f"typos in {share:.0%} of requests"
            cells = []
            by_floor: dict[float, list[str]] = {f: [] for f in OTHER_FLOORS}
            for n in args.sizes:
                results = [replay(n, kind, share, n * 100_000 + index * 1000 + j) for j in range(args.replays)]
                cells.append(f"{np.mean([d for d, _, _ in results]):.2f}")
                for other in OTHER_FLOORS:
                    by_floor[other].append(f"{np.mean([s and e >= other for _, s, e in results]):.2f}")
                if kind == "none":
                    null_effects[n] = [e for _, _, e in results]
                else:
                    effects = [e for _, _, e in results]
                    cells[-1] += f" ({np.median(effects):.4f})"
            rows.append((name, label, cells))
            others = "; ".join(f"floor {f:g}: {' '.join(c)}" for f, c in by_floor.items())
            print(f"  {label:<44}" + "".join(f"{c:>18}" for c in cells) + f"   ({others})", flush=True)
        for n, effects in null_effects.items():
            q = np.quantile(effects, [0.5, 0.95, 1.0])
            print(f"  unshifted MMD^2 at n={n}: median {q[0]:+.5f}, 95th percentile {q[1]:+.5f}, max {q[2]:+.5f}")
        print(f"  {name} took {time.perf_counter() - began:.0f}s", flush=True)

    print("\nshare of replays that called drift (median MMD^2 of the shifted replays); n = requests in the window")
    print(f"{'data':<12}{'traffic':<44}" + "".join(f"{'n=' + str(n):>18}" for n in args.sizes))
    for name, label, cells in rows:
        print(f"{name:<12}{label:<44}" + "".join(f"{c:>18}" for c in cells))


if __name__ == "__main__":
    main()
