"""Input drift on real data: detection power when traffic moves, false alarms when it does not.

The test is the one `slmkit serve` and `slmkit monitor` run: MMD^2 between the window's
all-MiniLM-L6-v2 embeddings (stored int8, as requests are) and 500 embedded training inputs,
RBF kernel at the reference's median distance, 1000 permutations, the window capped at
monitor.drift.max_window, and drift called only when the p-value survives Holm's correction
across a window's three tests (the worst case for the input test: p x 3 < alpha = 0.01) and
MMD^2 clears its floor (monitor.drift.min_input_mmd2).

    .venv/bin/python bench/drift_power.py [--data snips it_tickets] [--replays 60]

Data (../shared/data, or $SLMKIT_SHARED_DATA): each set is split by label. Some labels are held
out of training entirely: they are the "new traffic". The reference is 500 training inputs of
the other labels; unshifted traffic is drawn from the rest of those labels (never the
reference rows); shifted traffic mixes in requests of the held-out labels at a given share.
- snips: voice-assistant requests; SearchScreeningEvent and RateBook never seen in training.
- it_tickets: IT service-desk tickets (lower-cased, stop words removed); the Purchase queue new.

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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

SHARED = Path(os.environ.get("SLMKIT_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
SETS = {
    "snips": {"held_out": ("SearchScreeningEvent", "RateBook"), "shares": (0.1, 0.2, 0.5), "key": "intent"},
    "it_tickets": {"held_out": ("Purchase",), "shares": (0.1, 0.2, 0.5), "key": "queue"},
}
SIZES = (100, 300, 1000)
REFERENCE = 500
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--replays", type=int, default=60, help="replays per cell (>= 50)")
    parser.add_argument("--pool", type=int, default=3000, help="unshifted requests embedded per set")
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
        known = [i for i, label in enumerate(labels) if label not in spec["held_out"]]
        new = [i for i, label in enumerate(labels) if label in spec["held_out"]]
        rng.shuffle(known)
        rng.shuffle(new)
        reference_rows, pool_rows = known[:REFERENCE], known[REFERENCE : REFERENCE + args.pool]
        new_rows = new[: args.pool]
        reference = build_reference(name, [texts[i] for i in reference_rows], embed, size=REFERENCE)
        pool = dequantize(quantize(embed([texts[i] for i in pool_rows])))
        shifted_pool = dequantize(quantize(embed([texts[i] for i in new_rows])))
        embedded = time.perf_counter() - began
        print(
            f"\n{name}: reference {reference.size} training inputs of "
            f"{len(set(labels)) - len(spec['held_out'])} labels; "
            f"unshifted pool {len(pool)}; new-label pool {len(shifted_pool)} ({', '.join(spec['held_out'])}); "
            f"embedded in {embedded:.0f}s; bandwidth {reference.bandwidth:.3f}",
            flush=True,
        )
        null_effects: dict[int, list[float]] = {}

        def replay(
            n: int,
            share: float,
            seed: int,
            pool: np.ndarray = pool,
            shifted_pool: np.ndarray = shifted_pool,
            reference: Reference = reference,
        ) -> tuple[bool, bool, float]:
            r = np.random.default_rng(seed)
            k = round(share * n)
            window = np.vstack(
                [
                    pool[r.choice(len(pool), n - k, replace=False)],
                    shifted_pool[r.choice(len(shifted_pool), k, replace=False)],
                ]
            )
            window = window[r.permutation(len(window))][-cap:]
            test = mmd_test(
                window, reference.embeddings, bandwidth=reference.bandwidth, permutations=cfg.permutations, seed=seed
            )
            significant = test.p_value * TESTS_PER_WINDOW < alpha
            return significant and test.effect >= floor, significant, test.effect

        for share in (0.0, *spec["shares"]):
            label = "none (false alarms)" if share == 0 else f"{', '.join(spec['held_out'])} at {share:.0%}"
            cells = []
            by_floor: dict[float, list[str]] = {f: [] for f in OTHER_FLOORS}
            for n in SIZES:
                results = [replay(n, share, n * 100_000 + int(share * 100) * 1000 + j) for j in range(args.replays)]
                cells.append(f"{np.mean([d for d, _, _ in results]):.2f}")
                for other in OTHER_FLOORS:
                    by_floor[other].append(f"{np.mean([s and e >= other for _, s, e in results]):.2f}")
                if share == 0:
                    null_effects[n] = [e for _, _, e in results]
                else:
                    effects = [e for _, _, e in results]
                    cells[-1] += f" ({np.median(effects):.4f})"
            rows.append((name, label, cells))
            others = "; ".join(f"floor {f:g}: {' '.join(c)}" for f, c in by_floor.items())
            print(f"  {label:<42}" + "".join(f"{c:>18}" for c in cells) + f"   ({others})", flush=True)
        for n, effects in null_effects.items():
            q = np.quantile(effects, [0.5, 0.95, 1.0])
            print(f"  unshifted MMD^2 at n={n}: median {q[0]:+.5f}, 95th percentile {q[1]:+.5f}, max {q[2]:+.5f}")
        print(f"  {name} took {time.perf_counter() - began:.0f}s", flush=True)

    print("\nshare of replays that called drift (median MMD^2 of the shifted replays); n = requests in the window")
    print(f"{'data':<12}{'traffic':<42}" + "".join(f"{'n=' + str(n):>18}" for n in SIZES))
    for name, label, cells in rows:
        print(f"{name:<12}{label:<42}" + "".join(f"{c:>18}" for c in cells))


if __name__ == "__main__":
    main()
