"""The three-way answer table of examples/policy-qa: base + retrieval, fine-tuned without retrieval,
fine-tuned + retrieval, on held-out questions asked after some documents changed.

    flock /tmp/slmkit-heavy.lock .venv/bin/python bench/retrieval_answers.py [--workdir .bench/policy-qa]
        [--seed N] [--set task.retrieval.counterfactual_share=0] [--closed OTHER_WORKDIR/closed]

1. A copy of the example: `data build` (RAFT contexts), `train` (the retrieval adapter).
   A second copy without `task.retrieval` (task policy-qa-closed): the same questions, no
   documents in the prompt, trained the same way (the closed-book adapter).
2. updates/ is copied over docs/ (four facts change after training) and the index is updated.
3. eval/questions.jsonl is answered three ways; accuracy is per kind (fresh: the fact changed
   after training; stable; absent: no document holds it, the refusal is right).
4. The restricted questions (the staff discount, the finance refund limit) are asked by a caller
   with the group and by a public one, with both retrieval adapters' models: the facts were never
   in a training row, so only reading the retrieved chunk answers them.
Runs already trained in the work directory are reused (delete it to train again). `--seed` sets
train.seed of both adapters, `--set` overrides a setting of the retrieval copy (YAML values),
`--closed` reuses a closed-book run trained elsewhere with the same seed.
Prints the tables and writes results.json there.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "policy-qa"


# Asked with the group's key and with a public one: (groups, question, answer, document or None: refused).
RESTRICTED = [
    (["staff"], "What is the staff discount?", "25 percent", "docs/internal/staff-pricing.md"),
    (["finance"], "Up to what amount may a support agent approve a refund on their own?", "1500 euros",
     "docs/finance/refund-limits.md"),
    ([], "What is the staff discount?", "not in the documents", None),
    ([], "Up to what amount may a support agent approve a refund on their own?", "not in the documents", None),
]  # fmt: skip


def prepare(target: Path, *, closed: bool, seed: int | None = None, overrides: dict[str, Any] | None = None) -> Any:
    """The example copied to `target` (once), its dataset built and an adapter trained (once)."""
    from slmkit.config import load_config
    from slmkit.data import run_data_build
    from slmkit.registry import Registry
    from slmkit.train import run_train

    if not target.exists():
        shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".slmkit", "__pycache__"))
        raw = yaml.safe_load((target / "slmkit.yaml").read_text())
        if closed:
            raw["task"].pop("retrieval")
            raw["task"]["name"] = "policy-qa-closed"
            raw["data"].pop("documents")
        if seed is not None:
            raw["train"]["seed"] = seed
        for dotted, value in (overrides or {}).items():
            *parents, last = dotted.split(".")
            node = raw
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = value
        (target / "slmkit.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    config = load_config(target)
    registry = Registry(config.state_dir)
    done = [r for r in registry.list_runs(config.task.name) if r.adapter_digest]
    if done:
        return config, done[-1].run_id
    print(f"== {config.task.name}: data build + train")
    for line in run_data_build(config).summary_lines():
        print(line)
    trained = run_train(config, progress=False)
    for line in trained.summary_lines():
        print(line)
    return config, trained.run_id


def answers(config: Any, run_id: str | None, questions: list[Any], *, with_adapter: bool) -> list[Any]:
    """The answers of one model (the base, or base + the run's adapter) as serving gives them."""
    from slmkit.eval.grounded import answer_questions
    from slmkit.models import load_model, load_tokenizer, resolve_base_model
    from slmkit.registry import Registry
    from slmkit.retrieval import Retriever, open_index
    from slmkit.task import Task

    registry = Registry(config.state_dir)
    base = resolve_base_model(config.base_model, config.root)
    adapter = registry.store.path(registry.get_run(run_id).adapter_digest) if with_adapter else None
    model = load_model(base, adapter=adapter, merge=True, dtype="bfloat16")
    task = Task.from_config(config)
    retriever = Retriever(open_index(config)) if task.cfg.retrieval else None
    return answer_questions(model, load_tokenizer(base), task, questions, retriever=retriever, max_new_tokens=48)


def main() -> None:
    from slmkit.config import load_config
    from slmkit.eval.grounded import Question, read_questions, score_answers
    from slmkit.retrieval import run_index_update
    from slmkit.task import Task

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=REPO / ".bench" / "policy-qa")
    parser.add_argument("--seed", type=int, default=None, help="train.seed of both adapters (default: the example's)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a setting of the retrieval copy"
    )
    parser.add_argument("--closed", type=Path, default=None, help="a closed-book project trained already")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    overrides = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.set)}
    began = time.perf_counter()
    rag, rag_run = prepare(args.workdir / "retrieval", closed=False, seed=args.seed, overrides=overrides)
    closed, closed_run = prepare(args.closed or args.workdir / "closed", closed=True, seed=args.seed)

    for updated in (EXAMPLE / "updates").iterdir():  # the facts that change after training
        shutil.copy2(updated, rag.root / "docs" / updated.name)
    rag = load_config(rag.root)
    for line in run_index_update(rag).summary_lines():
        print(line)
    questions = read_questions(EXAMPLE / "eval" / "questions.jsonl")
    sides = {
        "base + retrieval": (rag, rag_run, False),
        "fine-tuned, no retrieval": (closed, closed_run, True),
        "fine-tuned + retrieval": (rag, rag_run, True),
    }
    results: dict[str, Any] = {}
    for name, (config, run_id, with_adapter) in sides.items():
        t0 = time.perf_counter()
        answered = answers(config, run_id, questions, with_adapter=with_adapter)
        results[name] = score_answers(Task.from_config(config), questions, answered)
        results[name]["seconds"] = round(time.perf_counter() - t0, 1)
        results[name]["answers"] = [
            {"question": q.text, "expected": q.answer, "kind": q.kind, "output": a.output, "cited": a.cited_documents}
            for q, a in zip(questions, answered, strict=True)
        ]
    restricted = [Question(q, a, d, "restricted", tuple(g)) for g, q, a, d in RESTRICTED]
    for name in ("base + retrieval", "fine-tuned + retrieval"):
        config, run_id, with_adapter = sides[name]
        answered = answers(config, run_id, restricted, with_adapter=with_adapter)
        results[name]["restricted"] = [
            {"groups": list(q.groups), "question": q.text, "expected": q.answer, "output": a.output,
             "cited": a.cited_documents, "right": _right(q, a)}
            for q, a in zip(restricted, answered, strict=True)
        ]  # fmt: skip
    (args.workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(results, len(questions))
    print_restricted(results)
    print(f"total {time.perf_counter() - began:.0f}s")


def print_table(results: dict[str, Any], items: int) -> None:
    rows = [
        ("accuracy", "accuracy"),
        ("  fresh facts (changed after training)", "accuracy_fresh"),
        ("  stable facts", "accuracy_stable"),
        ("  absent: refused (refusal correctness)", "accuracy_absent"),
        ("citation precision", "citation_precision"),
        ("citation recall", "citation_recall"),
        ("false refusals (answerable, refused)", "false_refusals"),
    ]
    names = list(results)
    print(f"{items} held-out questions")
    print(f"{'':<42}" + "".join(f"{n:>26}" for n in names))
    for label, key in rows:
        cells = [results[n].get(key) for n in names]
        print(f"{label:<42}" + "".join(f"{'-' if v is None else f'{v:.3f}':>26}" for v in cells))


def print_restricted(results: dict[str, Any]) -> None:
    print("\nrestricted questions (never in a training row), asked with and without the group")
    for name in ("base + retrieval", "fine-tuned + retrieval"):
        for item in results[name]["restricted"]:
            caller = ",".join(item["groups"]) or "public"
            answer = (item["output"] or {}).get("answer")
            cited = ", ".join(item["cited"]) or "-"
            mark = "right" if item["right"] else "WRONG"
            print(f"  {name:<24} {caller:<8} {item['question'][:48]:<48} -> {answer!r} [{cited}] {mark}")


def _right(question: Any, answered: Any) -> bool:
    """The expected answer (normalised), citing the expected document when one holds it."""
    got = (answered.output or {}).get("answer")
    same = isinstance(got, str) and " ".join(got.lower().strip(" .").split()) == question.answer
    return same and (question.document is None or question.document in answered.cited_documents)


if __name__ == "__main__":
    main()
