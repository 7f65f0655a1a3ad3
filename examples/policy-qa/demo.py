"""The policy Q&A example end to end: answers with citations through the OpenAI-compatible API, an API
key that cannot see the staff documents, and a document update that changes the served answer
without retraining.

    .venv/bin/python examples/policy-qa/demo.py [--project .demo/policy-qa]

1. The example is copied to --project (once) and its documents reset to docs/ as shipped; the
   index is built or updated.
2. Unless a release is serving already: data build (training rows with retrieved context),
   train, eval, release; an earlier trained run in the project is evaluated and released instead.
3. Two API keys: `support-app` (public documents only) and `staff-app` (group staff).
4. The server starts; questions go through the official openai client; each answer prints with
   its citations (document, section, character span) from the response's `slmkit` field.
5. updates/warranty.html replaces docs/warranty.html, `index update` runs while the server keeps
   serving, and the same question is asked again.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
QUESTIONS = [
    ("support-app", "How long is the warranty on the HaloCam 2K?"),
    ("support-app", "What is the staff discount?"),
    ("staff-app", "What is the staff discount?"),
    ("support-app", "Can you recommend a pizza place near the station?"),
]
UPDATED_QUESTION = ("support-app", "How long is the warranty on the HaloCam 2K?")


def prepare(project: Path) -> Any:
    from slmkit.config import load_config
    from slmkit.retrieval import run_index_update

    if not project.exists():
        shutil.copytree(HERE, project, ignore=shutil.ignore_patterns(".slmkit", "__pycache__"))
    shutil.copytree(HERE / "docs", project / "docs", dirs_exist_ok=True)  # the documents as shipped
    config = load_config(project)
    print("== index")
    for line in run_index_update(config).summary_lines():
        print(line)
    return config


def ensure_release(config: Any) -> None:
    from slmkit.errors import RegistryError
    from slmkit.eval import run_eval
    from slmkit.pipeline import run_pipeline, run_release
    from slmkit.registry import Registry

    registry = Registry(config.state_dir)
    try:
        release = registry.resolve(config.task.name, default_alias=config.release.alias)
        print(f"== serving {release.ref} (already released)")
        return
    except RegistryError:
        pass
    trained = [r for r in registry.list_runs(config.task.name) if r.adapter_digest]
    if not trained:
        result = run_pipeline(config, note="policy-qa demo")
        if result.release is None:
            raise SystemExit("the adapter failed its gates; nothing was released")
        return
    print(f"== eval + release of run {trained[-1].run_id}")
    evaluated = run_eval(config, run_id=trained[-1].run_id, progress=False)
    for line in evaluated.summary_lines():
        print(line)
    release = run_release(config, run_id=trained[-1].run_id, note="policy-qa demo")
    print(f"released {release.name}@{release.version}")


def ask(client: Any, model: str, key: str, question: str) -> None:
    response = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}])
    extras = response.model_extra.get("slmkit", {})
    print(f"[{key}] > {question}")
    print(f"[{key}] < {response.choices[0].message.content}   ({extras.get('retrieved')} chunks retrieved)")
    for citation in extras.get("citations", []):
        start, end = citation["span"]
        print(f"           {citation['ref']} = {citation['document']} [{start}:{end}] {citation['section']}")


def main() -> None:
    import openai

    from slmkit.retrieval import run_index_update
    from slmkit.serve import start_server
    from slmkit.serve.keys import KeyStore

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=Path(".demo") / "policy-qa")
    args = parser.parse_args()
    config = prepare(args.project)
    ensure_release(config)
    with KeyStore(config.state_dir / "keys.db") as keys:
        for name in ("support-app", "staff-app"):
            if any(k.name == name and k.revoked_at is None for k in keys.list()):
                keys.revoke(name)
        tokens = {
            "support-app": keys.add("support-app", [config.task.name])[1],
            "staff-app": keys.add("staff-app", [config.task.name], ["staff"])[1],
        }
    print("keys: support-app (public documents), staff-app (public + staff)")
    with start_server(config, port=0) as handle:
        print(f"== serve: {handle.url}")
        clients = {k: openai.OpenAI(base_url=handle.url, api_key=t, max_retries=0) for k, t in tokens.items()}
        for key, question in QUESTIONS:
            ask(clients[key], config.task.name, key, question)
        print("== docs/warranty.html updated (HaloCam 2K: 18 months -> 3 years); slmkit index update")
        shutil.copy2(HERE / "updates" / "warranty.html", config.root / "docs" / "warranty.html")
        result = run_index_update(config)
        print(f"changed: {', '.join(result.changed)}; {result.embedded} chunks embedded; no retraining")
        key, question = UPDATED_QUESTION
        ask(clients[key], config.task.name, key, question)
    print(json.dumps({"project": str(config.root)}))


if __name__ == "__main__":
    main()
