"""`slmkit merge`: fold a run's adapter into its base model, and prove the result answers the same.

A merged model is one plain transformers directory (safetensors, config, tokenizer, chat
template) that any engine can load without PEFT. Merging is only safe to ship once it is shown
to change nothing: `verify_merge` answers the locked gold set greedily with the base model plus
the unmerged adapter and with the merged directory, through the same generation code as
`slmkit eval`, and reports how often the answers are identical and how far the logits moved.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from slmkit import atomic
from slmkit.config import ProjectConfig
from slmkit.data import open_dataset
from slmkit.errors import ModelError, StageError
from slmkit.models import BaseModelRef, load_model, load_tokenizer, resolve_base_model
from slmkit.models.generate import generate
from slmkit.registry import Registry
from slmkit.registry.store import hash_dir
from slmkit.task import Task
from slmkit.train.checkpoint import library_versions

MergeDtype = Literal["float32", "bfloat16"]
MANIFEST = "slmkit-merged.json"  # written last: its presence means the directory is complete
SHOWN_DISAGREEMENTS = 5


def merge_adapter(base_ref: BaseModelRef, adapter_dir: Path, out_dir: Path, dtype: MergeDtype = "float32") -> Path:
    """Write base + adapter as one standalone model directory that loads without PEFT.

    The update is folded in float32 and the weights are then cast to `dtype` (see load_model).
    The directory is built under a temporary name and renamed into place; an existing
    directory is replaced only when it is a merged model slmkit wrote.
    """
    from transformers import AutoTokenizer

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).exists():
        raise StageError(
            f"{out_dir} exists and is not a merged model written by slmkit; refusing to overwrite it",
            hint="choose another --out directory, or remove this one",
        )
    model = load_model(base_ref, adapter=adapter_dir, merge=True, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(base_ref.path)  # as shipped: no pad token added
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{secrets.token_hex(4)}"
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if AutoTokenizer.from_pretrained(tmp).chat_template != tokenizer.chat_template:
            raise ModelError(f"the chat template of {base_ref.model_id} did not survive saving to {out_dir}")
        manifest = {
            "kind": "slmkit.merged_model",
            "created_at": _now(),
            "base_model": base_ref.record(),
            "adapter": str(adapter_dir),
            "adapter_sha256": hash_dir(adapter_dir),
            "dtype": dtype,
            "files_sha256": hash_dir(tmp),
            "versions": library_versions(),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


@dataclass
class GoldPrompts:
    """What a check needs: the gold prompts as eval renders them, the model and the adapter."""

    run_id: str | None
    task: Task
    base: BaseModelRef
    adapter_dir: Path
    ids: list[str]
    inputs: list[tuple[str, list[dict[str, str]]]]  # (input, history) per item, to render again
    prompts: list[str]
    tokenizer: Any
    dataset_version: str
    gold_hash: str


def verify_merge(
    config: ProjectConfig,
    source: str | Path | None = None,
    *,
    out_dir: Path | None = None,
    limit: int | None = None,
    dtype: MergeDtype = "float32",
    logit_items: int = 4,
    registry: Registry | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Greedy answers on the gold set from base + unmerged adapter and from the merged model, compared.

    `source` is a run id (default: the task's latest run) or an adapter directory (checked on
    the latest dataset's gold set and the configured base model). `out_dir` is the merged model
    to check; when it does not exist yet (or is None: a temporary directory) it is merged first.
    For a run, the report is also written to its folder as merge.json.
    """
    import torch

    registry = registry or Registry(config.state_dir)
    gold = gold_prompts(config, registry, source, limit)
    n = len(gold.prompts)
    if n == 0:
        raise StageError("the gold set is empty; nothing to compare", hint="run `slmkit data build`")
    k = min(logit_items, n)

    began = time.perf_counter()
    unmerged = load_model(gold.base, adapter=gold.adapter_dir, merge=False, dtype=dtype)
    # The transformers model under the PEFT wrapper, LoRA layers in place: the exact call that
    # eval and serving make on a merged model, so only the weights differ between the sides.
    texts_a, logits_a = _answer(unmerged.get_base_model(), gold.tokenizer, gold.prompts, config, k)
    seconds_a = time.perf_counter() - began
    del unmerged
    log(f"  base + adapter (unmerged): {n} gold items in {seconds_a:.1f}s ({dtype})")

    with tempfile.TemporaryDirectory(prefix="slmkit-merge-") as scratch:
        merged_dir = Path(out_dir) if out_dir is not None else Path(scratch) / "merged"
        if not merged_dir.exists():
            merge_adapter(gold.base, gold.adapter_dir, merged_dir, dtype)
        if not (merged_dir / "config.json").exists():
            raise StageError(f"{merged_dir} holds no model (no config.json)", hint="run `slmkit merge` first")
        began = time.perf_counter()
        merged_ref = BaseModelRef(str(merged_dir), f"{gold.base.model_id} (merged)", merged_dir, "", "merged")
        tokenizer_b = load_tokenizer(merged_ref)
        # Rendered with the merged directory's own tokenizer and chat template, as a user would.
        prompts_b = [gold.task.prompt_text(tokenizer_b, text, history) for text, history in gold.inputs]
        texts_b, logits_b = _answer(load_model(merged_ref, dtype=dtype), tokenizer_b, prompts_b, config, k)
        seconds_b = time.perf_counter() - began
    log(f"  merged model:              {n} gold items in {seconds_b:.1f}s ({dtype})")

    same_text = [a == b for a, b in zip(texts_a, texts_b, strict=True)]
    same_json = [same_parse(gold.task, a, b) for a, b in zip(texts_a, texts_b, strict=True)]
    diffs = [float((a - b).abs().max()) for a, b in zip(logits_a, logits_b, strict=True)]
    report: dict[str, Any] = {
        "kind": "slmkit.merge_check",
        "created_at": _now(),
        "run_id": gold.run_id,
        "adapter": str(gold.adapter_dir),
        "merged_dir": str(out_dir) if out_dir is not None else None,
        "base_model": gold.base.record(),
        "dataset_version": gold.dataset_version,
        "gold_hash": gold.gold_hash,
        "dtype": dtype,
        "decoding": {
            "greedy": True,
            "max_new_tokens": config.eval.max_new_tokens,
            "batch_size": config.eval.batch_size,
        },
        "items": n,
        "prompts_identical": prompts_b == gold.prompts,
        "identical_text": sum(same_text),
        "identical_json": sum(same_json),
        "text_agreement": round(sum(same_text) / n, 6),
        "json_agreement": round(sum(same_json) / n, 6),
        "logit_items": k,
        "max_abs_logit_diff": max(diffs, default=0.0),
        "max_abs_logit": max((float(t.abs().max()) for t in logits_a), default=0.0),
        "first_token_agreement": sum(int(a.argmax() == b.argmax()) for a, b in zip(logits_a, logits_b, strict=True)),
        "seconds": {"unmerged": round(seconds_a, 2), "merged": round(seconds_b, 2)},
        "disagreements": [
            {"id": gold.ids[i], "unmerged": texts_a[i], "merged": texts_b[i]} for i in range(n) if not same_text[i]
        ][:SHOWN_DISAGREEMENTS],
        "torch_threads": torch.get_num_threads(),
    }
    if gold.run_id is not None:
        atomic.write_json(_report_path(config, gold.run_id), report, ensure_ascii=False)
    return report


@dataclass
class MergeResult:
    run_id: str
    out_dir: Path
    dtype: MergeDtype
    seconds: float
    check: dict[str, Any] | None  # verify_merge's report, when asked for
    report_path: Path | None  # the run's merge.json

    @property
    def differing(self) -> int:
        """Gold items whose answer text changed with the merge (0 without a check)."""
        return 0 if self.check is None else self.check["items"] - self.check["identical_text"]

    @property
    def consistent(self) -> bool:
        """Every checked answer identical; bf16 rounding may flip near ties, so only fp32 must be."""
        return self.dtype != "float32" or self.differing == 0

    def summary_lines(self) -> list[str]:
        lines = [f"merged run {self.run_id} ({self.dtype}) into {self.out_dir} in {self.seconds:.0f}s"]
        if self.check is None:
            return lines
        c = self.check
        lines += [
            f"gold items: {c['items']}   prompts identical: {'yes' if c['prompts_identical'] else 'NO'}",
            f"identical answer text: {c['identical_text']}/{c['items']} ({c['text_agreement']:.1%})",
            f"identical parsed JSON: {c['identical_json']}/{c['items']} ({c['json_agreement']:.1%})",
            f"max |logit diff| at the first answer token: {c['max_abs_logit_diff']:.3g} over {c['logit_items']} "
            f"items (logits up to {c['max_abs_logit']:.3g})",
        ]
        for d in c["disagreements"]:
            lines.append(f"  differs on {d['id']}: unmerged {d['unmerged'][:60]!r} / merged {d['merged'][:60]!r}")
        if self.report_path is not None:
            lines.append(f"report: {self.report_path}")
        return lines


def run_merge(
    config: ProjectConfig,
    run_id: str | None = None,
    *,
    out_dir: Path | None = None,
    dtype: MergeDtype = "float32",
    verify: bool = False,
    limit: int | None = None,
    registry: Registry | None = None,
    log: Callable[[str], None] = print,
) -> MergeResult:
    """Merge a run's adapter (the latest run by default) into `out_dir` (default: the run's merged/)."""
    registry = registry or Registry(config.state_dir)
    run = registry.get_run(run_id, task=config.task.name)
    base = run_base_model(config, run.run_id, run.base_model)
    target = Path(out_dir) if out_dir is not None else config.state_dir / "runs" / run.run_id / "merged"
    began = time.perf_counter()
    merge_adapter(base, _run_adapter(registry, run.run_id, run.adapter_digest), target, dtype)
    seconds = time.perf_counter() - began
    if not verify:
        return MergeResult(run.run_id, target, dtype, seconds, None, None)
    check = verify_merge(config, run.run_id, out_dir=target, limit=limit, dtype=dtype, registry=registry, log=log)
    return MergeResult(run.run_id, target, dtype, seconds, check, _report_path(config, run.run_id))


def gold_prompts(
    config: ProjectConfig, registry: Registry, source: str | Path | None, limit: int | None
) -> GoldPrompts:
    """The gold prompts exactly as `slmkit eval` renders them for this run (or bare adapter)."""
    if isinstance(source, Path):
        if not (source / "adapter_config.json").exists():
            raise ModelError(f"{source} is not a PEFT adapter (no adapter_config.json)")
        run_id, task, dataset = None, Task.from_config(config), open_dataset(config, registry)
        base, adapter_dir, trained_prompt = resolve_base_model(config.base_model, config.root), source, None
    else:
        run = registry.get_run(source, task=config.task.name)
        trained = ProjectConfig.model_validate({k: v for k, v in run.config.items() if not k.startswith("_")})
        run_id, task = run.run_id, Task(trained.task, trained.task.output_schema or config.output_schema())
        dataset = open_dataset(config, registry, run.dataset_version)  # refuses a changed gold set
        base = run_base_model(config, run.run_id, run.base_model)
        adapter_dir = _run_adapter(registry, run.run_id, run.adapter_digest)
        trained_prompt = run.metrics.get("prompt_sha256")
    tokenizer = load_tokenizer(base)
    if trained_prompt and task.prompt_fingerprint(tokenizer) != trained_prompt:
        raise StageError(
            f"the prompt rendered now differs from the one run {run_id} trained with",
            hint="the base model's chat template changed since training; retrain on the current base model",
        )
    rows = dataset.examples("gold")[: limit or config.eval.max_items]
    inputs = [(task.model_input(row.input, row.prompt_context), list(row.history)) for row in rows]
    prompts = [task.prompt_text(tokenizer, text, history) for text, history in inputs]
    return GoldPrompts(
        run_id, task, base, adapter_dir, [str(r.id) for r in rows], inputs, prompts, tokenizer,
        dataset.version, dataset.gold_hash,
    )  # fmt: skip


def _report_path(config: ProjectConfig, run_id: str) -> Path:
    return config.state_dir / "runs" / run_id / "merge.json"


def run_base_model(config: ProjectConfig, run_id: str, recorded: dict[str, Any]) -> BaseModelRef:
    """The base model a run recorded, resolved again; ModelError when its weights changed since."""
    base = resolve_base_model(recorded["spec"], config.root)
    if base.sha256 != recorded["sha256"]:
        raise ModelError(
            f"base model '{base.spec}' is not the one run {run_id} trained on "
            f"(sha256 {base.sha256[:12]} != {recorded['sha256'][:12]})",
            hint="restore that base model, or retrain on the current one",
        )
    return base


def _run_adapter(registry: Registry, run_id: str, digest: str | None) -> Path:
    if digest is None:
        raise StageError(f"run {run_id} recorded no adapter", hint="train again")
    return registry.store.path(digest)


def _answer(
    model: Any, tokenizer: Any, prompts: list[str], config: ProjectConfig, k: int
) -> tuple[list[str], list[Any]]:
    """Greedy answers as `slmkit eval` decodes them, and the first-token logits of the first `k` prompts."""
    e = config.eval
    outputs = generate(model, tokenizer, prompts, max_new_tokens=e.max_new_tokens, batch_size=e.batch_size)
    return [o.text for o in outputs], _last_logits(model, tokenizer, prompts[:k])


def _last_logits(model: Any, tokenizer: Any, prompts: list[str]) -> list[Any]:
    """Float32 logits of the first answer token, one unpadded prompt at a time."""
    import torch

    out = []
    with torch.inference_mode():
        for prompt in prompts:
            ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
            out.append(model(input_ids=ids, logits_to_keep=1).logits[0, -1].float())
    return out


def same_parse(task: Task, a: str, b: str) -> bool:
    """Both answers read back to the same JSON value, or neither is JSON at all."""
    pa, pb = task.parse(a), task.parse(b)
    return pa.is_json == pb.is_json and (not pa.is_json or pa.value == pb.value)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
