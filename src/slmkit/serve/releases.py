"""A release made ready to answer: its task spec, its base model and adapter checked, then
opened by the configured engine (`open_backend`; the transformers one merges the adapter here).

Everything comes from the release record, not from today's slmkit.yaml: the task (schema,
system prompt, refusal and escalation rules) is rebuilt from the config recorded at training
time, and the base model must hash to the one the adapter was trained on.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmkit.config import Precision, ProjectConfig, ServeConfig
from slmkit.errors import RegistryError, ServeError
from slmkit.models.resolve import BaseModelRef
from slmkit.registry import Registry, Release
from slmkit.serve.generator import Backend, Generator, TransformersGenerator
from slmkit.task import Task

ModelKey = tuple[str, int]  # (release name, version): immutable, unlike an alias


@dataclass(frozen=True)
class ReleaseSpec:
    """What the HTTP side needs to know about a release before any model is loaded."""

    release: Release
    task: Task
    max_input_chars: int
    precision: Precision = "auto"  # as recorded for its eval: both decode alike
    # The longest sequence the adapter was trained on (its train.max_seq_len): no prompt may be longer.
    max_prompt_tokens: int = 1024


def release_spec(release: Release) -> ReleaseSpec:
    """The task exactly as the release was trained and evaluated (schema inlined in its config)."""
    recorded = {k: v for k, v in release.config.items() if not k.startswith("_")}
    try:
        trained = ProjectConfig.model_validate(recorded)
    except Exception as exc:  # pydantic lists every problem; the first line is enough here
        raise ServeError(
            f"{release.ref}: its recorded config cannot be read by this slmkit version: {str(exc).splitlines()[0]}",
            hint="serve it with the slmkit version that released it, or release it again",
        ) from None
    if trained.task.output_schema is None:
        raise ServeError(f"{release.ref}: its recorded config has no inlined output schema", hint="release it again")
    task = Task(trained.task, trained.task.output_schema)
    return ReleaseSpec(release, task, trained.data.max_input_chars, trained.eval.precision, trained.train.max_seq_len)


@dataclass(frozen=True)
class CheckedRelease:
    """A release whose base model, adapter and prompt were checked against its record: ready for any engine."""

    spec: ReleaseSpec
    base: BaseModelRef
    adapter_dir: Path  # the stored copy, verified unchanged since release
    tokenizer: Any
    refusal_threshold: float = 0.0  # label probability under which its eval refused (label scoring)

    @property
    def release(self) -> Release:
        return self.spec.release


@dataclass
class LoadedRelease:
    spec: ReleaseSpec
    tokenizer: Any  # renders the prompt, whatever engine decodes it
    generator: Generator
    refusal_threshold: float = 0.0  # as its eval chose and applied it (0: never refuse for low confidence)

    @property
    def task(self) -> Task:
        return self.spec.task


def check_release(release: Release, *, state_dir: Path, root: Path) -> CheckedRelease:
    """Check the base model, the stored adapter and the rendered prompt against the release record.

    Takes a second or two (tokenizer, hashes), so it runs on the engine's thread (or at
    start-up), never on the event loop.
    """
    from slmkit.models import load_tokenizer
    from slmkit.models.resolve import resolve_recorded

    spec = release_spec(release)
    base = resolve_recorded(release.base_model, root, user=release.ref)  # an adapter fits only its own base
    tokenizer = load_tokenizer(base)
    # A separate connection: this runs on the engine's thread, not the event loop's.
    registry = Registry(state_dir)
    try:
        problems = registry.store.verify(release.adapter_digest)  # missing or altered since release
        if problems:
            raise ServeError(
                f"{release.ref}: its adapter {'; '.join(problems)}",
                hint="the stored copy no longer matches the release record; release the adapter again",
            )
        adapter = registry.store.path(release.adapter_digest)
        expected = _trained_prompt_fingerprint(registry, release)
        threshold = _recorded_refusal_threshold(registry, release)
    finally:
        registry.close()
    if expected and spec.task.prompt_fingerprint(tokenizer) != expected:
        raise ServeError(
            f"{release.ref}: the prompt rendered now differs from the one it was trained with",
            hint="the base model's chat template or slmkit's prompt format changed; retrain and release again",
        )
    return CheckedRelease(spec, base, adapter, tokenizer, threshold)


class TransformersBackend:
    """The in-process engine: each release loaded with its adapter merged, decoded by `generate`."""

    name = "transformers"

    def open(self, checked: CheckedRelease) -> Generator:
        from slmkit.models import load_model
        from slmkit.models.precision import weights_dtype

        model = load_model(
            checked.base, adapter=checked.adapter_dir, merge=True, dtype=weights_dtype(checked.spec.precision)
        )
        prefix = _system_prefix(checked.spec.task, checked.tokenizer, model)
        return TransformersGenerator(model, checked.tokenizer, prefix)

    def health(self) -> dict[str, Any]:
        return {"engine": self.name}

    def close(self) -> None:
        pass


class SharedBaseBackend:
    """The in-process engine with one base model in memory per base (and dtype): every release on
    it is a named LoRA adapter, made active for its own batches (`serve.merge_adapters: false`).

    Ten releases cost one base plus ten adapters (a few MB each for LoRA) instead of ten merged
    copies, at the price of the adapter's extra matmuls on every token. Only the engine's one
    worker thread opens, activates and closes adapters, so activation never races a batch.
    """

    name = "transformers"

    def __init__(self) -> None:
        self._bases: dict[tuple[str, str], Any] = {}  # (base sha256, dtype) -> PeftModel holding the adapters

    def open(self, checked: CheckedRelease) -> Generator:
        import torch
        from peft import PeftModel

        from slmkit.models import load_model
        from slmkit.models.load import is_full_weights
        from slmkit.models.precision import weights_dtype

        if is_full_weights(checked.adapter_dir):
            raise ServeError(
                f"{checked.release.ref} holds fully fine-tuned weights, not an adapter to share a base with",
                hint="serve it with serve.merge_adapters: true (its weights load as their own model)",
            )
        dtype = weights_dtype(checked.spec.precision)
        key, name = (checked.base.sha256, dtype), checked.release.ref
        model = self._bases.get(key)
        if model is None:
            base = load_model(checked.base, dtype=dtype)
            model = PeftModel.from_pretrained(base, str(checked.adapter_dir), adapter_name=name)
            model.eval()
            self._bases[key] = model
        elif name not in model.peft_config:
            model.load_adapter(str(checked.adapter_dir), adapter_name=name)
            model.to(getattr(torch, dtype))  # the new adapter's weights load in float32
        model.set_adapter(name)
        prefix = _system_prefix(checked.spec.task, checked.tokenizer, model)  # with this adapter's k/v
        return AdapterGenerator(model, name, checked.tokenizer, prefix)

    def health(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "shared_bases": [
                {"base": sha[:12], "dtype": dtype, "adapters": sorted(model.peft_config)}
                for (sha, dtype), model in self._bases.items()
            ],
        }

    def close(self) -> None:
        self._bases.clear()


class AdapterGenerator(TransformersGenerator):
    """Decodes with one named adapter of a shared base: activated before each batch."""

    def __init__(self, model: Any, name: str, tokenizer: Any, prefix: Any) -> None:
        super().__init__(model, tokenizer, prefix)
        self.name = name

    def generate(self, prompts: list[str], **kwargs: Any) -> list[Any]:
        self.model.set_adapter(self.name)
        return super().generate(prompts, **kwargs)

    def answer_labels(self, task: Task, prompts: list[str], **kwargs: Any) -> list[Any]:
        self.model.set_adapter(self.name)
        return super().answer_labels(task, prompts, **kwargs)

    def close(self) -> None:
        """Drop this adapter from the shared base (the base stays for the others)."""
        if self.name in self.model.peft_config and len(self.model.peft_config) > 1:
            if self.model.active_adapter == self.name:
                self.model.set_adapter(next(n for n in self.model.peft_config if n != self.name))
            self.model.delete_adapter(self.name)


def _system_prefix(task: Task, tokenizer: Any, model: Any) -> Any:
    """The keys/values of what every prompt of this task starts with (system message and the
    opening of the user turn), found as the common start of two prompts with different inputs."""
    from slmkit.models.generate import SharedPrefix, common_prefix

    probes = [tokenizer(task.prompt_text(tokenizer, text), add_special_tokens=False)["input_ids"] for text in "01"]
    return SharedPrefix.maybe(model, common_prefix(probes))


def _trained_prompt_fingerprint(registry: Registry, release: Release) -> str | None:
    try:
        return registry.get_run(release.run_id).metrics.get("prompt_sha256")
    except RegistryError:
        return None  # a release recorded without its run (imported, or built by hand) has nothing to compare


def _recorded_refusal_threshold(registry: Registry, release: Release) -> float:
    """The refusal threshold the release's eval chose on validation and applied to its answers."""
    import json

    try:
        report = json.loads(registry.store.path(release.eval_report_digest).read_text(encoding="utf-8"))
    except (OSError, ValueError, RegistryError):
        return 0.0  # no readable report: answer without the threshold, as before label scoring
    return float((report.get("decoding") or {}).get("refusal_threshold") or 0.0)


def open_backend(serve: ServeConfig, state_dir: Path) -> Backend:
    """The engine `serve.engine` names; vllm and llamacpp start their processes on first use."""
    if serve.engine == "vllm":
        from slmkit.serve.vllm_engine import VllmBackend

        return VllmBackend(serve, state_dir)
    if serve.engine == "llamacpp":
        from slmkit.serve.llamacpp_engine import LlamaCppBackend

        return LlamaCppBackend(serve, state_dir)
    return TransformersBackend() if serve.merge_adapters else SharedBaseBackend()


class ModelCache:
    """The last `capacity` opened releases, least recently used evicted (and closed); thread-safe."""

    def __init__(self, state_dir: Path, root: Path, capacity: int = 2, backend: Backend | None = None) -> None:
        self.state_dir = state_dir
        self.root = root
        self.capacity = max(1, capacity)
        self.backend = backend or TransformersBackend()
        self._models: OrderedDict[ModelKey, LoadedRelease] = OrderedDict()
        self._lock = threading.Lock()  # guards the dict, held for microseconds
        self._load_lock = threading.Lock()  # one load at a time: two would only double the memory peak

    def get(self, release: Release) -> LoadedRelease:
        key = (release.name, release.version)
        with self._load_lock:
            with self._lock:
                if key in self._models:
                    self._models.move_to_end(key)
                    return self._models[key]
            checked = check_release(release, state_dir=self.state_dir, root=self.root)
            loaded = LoadedRelease(
                checked.spec, checked.tokenizer, self.backend.open(checked), checked.refusal_threshold
            )
            evicted = []
            with self._lock:
                self._models[key] = loaded
                while len(self._models) > self.capacity:
                    evicted.append(self._models.popitem(last=False)[1])
            # The engine's one worker thread asks for releases one group at a time, so nothing
            # decodes on an evicted release now (an in-process model is freed by its last reference).
            for old in evicted:
                old.generator.close()
            return loaded

    def loaded(self) -> list[str]:
        """What is in memory now, oldest first; never waits for a load in progress."""
        with self._lock:
            return [f"{name}@{version}" for name, version in self._models]

    def close(self) -> None:
        """Close every open release, then the backend (its engine processes stop)."""
        with self._lock:
            models, self._models = list(self._models.values()), OrderedDict()
        for loaded in models:
            loaded.generator.close()
        self.backend.close()
