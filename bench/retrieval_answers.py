"""The three-way answer table of examples/policy-qa: base + retrieval, fine-tuned without retrieval,
fine-tuned + retrieval, on held-out questions asked after some documents changed.

    flock /tmp/slmkit-heavy.lock .venv/bin/python bench/retrieval_answers.py [--workdir .bench/policy-qa]

1. A copy of the example: `data build` (RAFT contexts), `train` (the retrieval adapter).
   A second copy without `task.retrieval` (task policy-qa-closed): the same questions, no
   documents in the prompt, trained the same way (the closed-book adapter).
2. updates/ is copied over docs/ (four facts change after training) and the index is updated.
3. eval/questions.jsonl is answered three ways; accuracy is per kind (fresh: the fact changed
   after training; stable; absent: no document holds it, the refusal is right).
Runs already trained in the work directory are reused (delete it to train again).
Prints the table and writes results.json there.
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


def prepare(target: Path, *, closed: bool) -> Any:
    """The example copied to `target` (once), its dataset built and an adapter trained (once)."""
    from slmkit.config import load_config
    from slmkit.data import run_data_build
    from slmkit.registry import Registry
    from slmkit.train import run_train

    if not target.exists():
        shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".slmkit", "__pycache__"))
        if closed:
            raw = yaml.safe_load((target / "slmkit.yaml").read_text())
            raw["task"].pop("retrieval")
            raw["task"]["name"] = "policy-qa-closed"
            raw["data"].pop("documents")
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
    from slmkit.eval.grounded import read_questions, score_answers
    from slmkit.retrieval import run_index_update
    from slmkit.task import Task

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=REPO / ".bench" / "policy-qa")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    rag, rag_run = prepare(args.workdir / "retrieval", closed=False)
    closed, closed_run = prepare(args.workdir / "closed", closed=True)

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
    (args.workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(results, len(questions))
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


if __name__ == "__main__":
    main()
