"""PII scrubbing: recall and precision per kind on labelled data, and rows per second.

Quality: the Presidio research set in /work/shared/data/presidio_pii (1,193 synthetic texts with
character spans, MIT), scored by `slmkit.data.pii_eval.evaluate_pii` with ner=none and
ner=names. Types slmkit does not scrub (GPE, ORGANIZATION, DATE_TIME, ZIP_CODE, ...) are listed
with how many of them a prediction happened to cover.

Speed: `PiiScrubber.scrub_row` on one core over the example's tickets (~240 characters, about
one in nine with personal data) and over the Presidio texts. Baseline: the exact-dedup key
(`dedup_key`: casefold, collapse whitespace, sha256) on the same rows, which the builder computes
for every row anyway.

    .venv/bin/python bench/pii_presidio.py [--data DIR] [--show-misses 10]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, example_rows, timed

DATA = REPO.parent / "shared" / "data" / "presidio_pii"


def _fmt(value: float | None) -> str:
    return "   -" if value is None else f"{value:5.2f}"


def print_quality(report: dict[str, Any], show_misses: int) -> None:
    print(f"{'kind':<8} {'gold':>5} {'pred':>5} {'neutral':>7} {'recall':>6} {'any-kind':>8} {'precision':>9}")
    for kind, s in report["kinds"].items():
        print(
            f"{kind:<8} {s['gold']:5d} {s['predicted']:5d} {s['neutral']:7d} {_fmt(s['recall']):>6} "
            f"{_fmt(s['any_recall']):>8} {_fmt(s['precision']):>9}"
        )
        if show_misses and (s["misses"] or s["wrong"]):
            print(f"         missed: {s['misses']}\n         wrong:  {s['wrong']}")
    print(f"any-kind recall over all in-scope gold spans: {_fmt(report['any_recall'])}")
    foreign = ", ".join(f"{k} {v['covered']}/{v['gold']}" for k, v in sorted(report["foreign"].items()))
    print(f"not scrubbed by slmkit (covered/gold): {foreign}")


def scrub_all(scrubber: Any, rows: list[tuple[dict[str, str], Any]]) -> None:
    for texts, output in rows:
        scrubber.scrub_row(texts, output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--show-misses", type=int, default=0, help="list up to N misses and wrong spans per kind")
    args = parser.parse_args()

    from slmkit.config import PII_ENTITIES, PiiConfig
    from slmkit.data.normalize import dedup_key
    from slmkit.data.pii import PiiScrubber
    from slmkit.data.pii_eval import evaluate_pii, load_presidio

    labelled = load_presidio(args.data)
    configs = {ner: PiiConfig(entities=list(PII_ENTITIES), ner=ner) for ner in ("none", "names")}
    for ner, cfg in configs.items():
        print(f"== Presidio research set, {len(labelled)} texts, ner={ner}")
        print_quality(evaluate_pii(PiiScrubber(cfg), labelled, examples=args.show_misses), args.show_misses)
        print()

    _, tickets = example_rows(100_000)
    workloads = {
        "example tickets": [({"input": text}, output) for text, output in tickets],
        "presidio texts": [({"input": row.text}, {"entities": []}) for row in labelled],
    }
    print("== speed, one core (best of 3)")
    for name, rows in workloads.items():
        chars = sum(len(texts["input"]) for texts, _ in rows) / len(rows)
        base_s, _ = timed(lambda rows=rows: [dedup_key(texts["input"]) for texts, _ in rows], repeats=3)
        print(f"{name}: {len(rows)} rows, {chars:.0f} chars/row; baseline dedup_key {len(rows) / base_s:10,.0f} rows/s")
        for ner, cfg in configs.items():
            # A new scrubber each time: its cache of short strings must not carry over between repeats.
            seconds, _ = timed(lambda rows=rows, cfg=cfg: scrub_all(PiiScrubber(cfg), rows), repeats=3)
            print(
                f"  scrub_row ner={ner:<6} {len(rows) / seconds:10,.0f} rows/s  "
                f"({seconds / base_s:4.1f}x the dedup key's time)"
            )


if __name__ == "__main__":
    main()
