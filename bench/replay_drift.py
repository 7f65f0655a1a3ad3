"""Forgetting control: how far an adapter drifts from the base outside the task, with and without self-replay.

Trains SmolLM2-135M-Instruct on the example project twice, the same steps, data and seed:
(a) task rows only (`train.replay.share: 0`, the baseline) and (b) with a share of general
prompts answered by the base model itself before training. Both runs report, on held-out
general prompts (never trained on), the per-token NLL of the base's own answers and the share
of those tokens the model still predicts first: the base scores itself near 100%; the further
an adapter falls, the more it has forgotten. The validation loss on the task shows what replay
costs there.

    .venv/bin/python bench/replay_drift.py [--steps 40] [--share 0.2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import EXAMPLE, smollm2, threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--share", type=float, default=0.2)
    args = parser.parse_args()

    import yaml

    from slmkit.config import load_config
    from slmkit.data import run_data_build
    from slmkit.train import run_train

    smollm2()
    n_threads = threads()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="slmkit-bench-replay-") as tmp:
        root = Path(tmp) / "project"
        (root / "data").mkdir(parents=True)
        for name in ("tickets.jsonl", "tickets_extra.csv"):
            shutil.copy2(EXAMPLE / "data" / name, root / "data" / name)
        config = yaml.safe_load((EXAMPLE / "slmkit.yaml").read_text())
        config["data"]["dedup"]["semantic"]["enabled"] = False
        config["train"].update(max_steps=args.steps, eval_every=args.steps, threads=n_threads)
        for label, share in (("task only", 0.0), (f"replay {share_text(args.share)}", args.share)):
            config["train"]["replay"] = {"share": share}
            (root / "slmkit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
            project = load_config(root)
            if not results:
                run_data_build(project)
            results[label] = run_train(project, progress=False, log=lambda line: print(f"  {line}")).metrics

    print(f"SmolLM2-135M-Instruct + LoRA, {args.steps} steps on the example task, {n_threads} threads")
    print(f"{'':<14}{'task val loss':>14}{'general NLL':>13}{'agreement':>11}{'replay rows':>13}{'tokens/s':>10}")
    first = next(iter(results.values()))
    before = first["replay_drift"]["before"]
    print(f"{'base model':<14}{'':>14}{before['nll']:>13.3f}{before['token_agreement']:>11.1%}")
    for label, m in results.items():
        after = m["replay_drift"]["after"]
        print(
            f"{label:<14}{m['best_val_loss']:>14.4f}{after['nll']:>13.3f}{after['token_agreement']:>11.1%}"
            f"{m['replay']['rows']:>13}{m['tokens_per_s']:>10.0f}"
        )
    (a, b) = results.values()
    kept = (b["replay_drift"]["after"]["token_agreement"] - a["replay_drift"]["after"]["token_agreement"]) / max(
        before["token_agreement"] - a["replay_drift"]["after"]["token_agreement"], 1e-9
    )
    print(
        f"replay recovers {kept:.0%} of the agreement the task-only adapter lost; "
        f"task val loss {b['best_val_loss'] - a['best_val_loss']:+.4f}"
    )


def share_text(share: float) -> str:
    return f"{share:.0%}"


if __name__ == "__main__":
    main()
