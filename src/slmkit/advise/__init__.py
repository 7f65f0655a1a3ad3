"""`slmkit advise`: fine-tune, retrieve, both or neither, with each reason and the evidence behind it.

Answers come from flags first, then `advise:` in slmkit.yaml, then (with `ask`) a short prompt
for what is still open; the project's evidence fills in what nobody answered. The decision is
`rules.decide`, a pure function; this module gathers its inputs and writes the starter sections.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmkit.advise.evidence import evidence_lines, read_evidence
from slmkit.advise.rules import QUESTIONS, Advice, Evidence, decide
from slmkit.advise.starter import starter_yaml
from slmkit.config import AdviseConfig, ProjectConfig

__all__ = ["QUESTIONS", "Advice", "AdviseResult", "Evidence", "decide", "run_advise"]

Ask = Callable[[str, str], Any]  # (question name, question text) -> answer, or None to skip


@dataclass
class AdviseResult:
    advice: Advice
    evidence: Evidence
    answers: dict[str, Any]
    starter: str
    written: Path | None = None
    evidence_lines: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        lines = [*self.evidence_lines, *self.advice.lines()]
        if self.written is not None:
            lines.append(f"starter sections for slmkit.yaml: {self.written}")
        return lines


def run_advise(
    config: ProjectConfig | None,
    flags: dict[str, Any],
    *,
    ask: Ask | None = None,
    quick_eval: int = 0,
    out: Path | None = None,
    log: Callable[[str], None] = print,
) -> AdviseResult:
    """Gather answers and evidence, decide, and write the starter sections to `out` (when given)."""
    settings = config.advise if config is not None else AdviseConfig()
    answers: dict[str, Any] = {}
    source: dict[str, str] = {}
    for name in QUESTIONS:
        flag, configured = flags.get(name), getattr(settings, name)
        if flag is not None:
            answers[name], source[name] = flag, f"you said so (--{name.replace('_', '-')})"
        elif configured is not None:
            answers[name], source[name] = configured, f"you said so (advise.{name} in slmkit.yaml)"
    target = flags.get("target") or settings.target
    evidence = Evidence()
    if config is not None:
        from slmkit.registry import Registry

        registry = Registry(config.state_dir)
        try:
            evidence = read_evidence(config, registry, quick_eval=quick_eval, log=log)
        finally:
            registry.close()
    if ask is not None:
        for name, text in QUESTIONS.items():
            if name not in answers:
                value = ask(name, text)
                if value is not None:
                    answers[name], source[name] = value, "you said so (prompt)"
    advice = decide(answers, source, evidence, target)
    label_field = config.task.label_field if config is not None else None
    text = starter_yaml(advice, answers, label_field=label_field, target=target)
    written = None
    if out is not None:
        out.write_text(text, encoding="utf-8")
        written = out
    return AdviseResult(advice, evidence, answers, text, written, evidence_lines(evidence) if config else [])
