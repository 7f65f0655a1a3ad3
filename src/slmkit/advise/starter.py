"""The starter slmkit.yaml sections for the advice: what to add to the project for the choice made.

Sections are rendered from the config's own models and field descriptions (`templates`), so
every key carries its help text and the sections validate when merged into slmkit.yaml. The
`retrieval:` section comes from the config's retrieval model when this slmkit has one; until
then it is written as a commented block saying what to set once it lands.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from slmkit.advise.rules import MIN_LABEL_ROWS, Advice
from slmkit.config import ProjectConfig

TEACHER_EXAMPLE = "http://127.0.0.1:8001/v1"


def starter_yaml(advice: Advice, answers: dict[str, Any], *, label_field: str | None, target: float) -> str:
    """The starter file: a header with the advice, then the sections to merge into slmkit.yaml."""
    from slmkit.templates import render_section

    lines = [f"# slmkit advise: {advice.choice.upper()}. Merge the sections below into slmkit.yaml."]
    lines += [f"#   - {r.text} [{r.evidence}]" for r in advice.reasons]
    lines.append("")
    given = {name: value for name, value in answers.items() if value is not None}
    if given:
        lines += render_section("advise", {**given, "target": target})
        lines.append("")
    if advice.choice in ("fine-tune", "both"):
        metric = "label_accuracy" if label_field else "exact_match"
        lines += render_section("train", {"method": "lora", "epochs": 2, "lora": {"r": 16, "alpha": 32}})
        lines.append("")
        lines += render_section("eval", {"gates": ["schema_validity >= 0.95", f"{metric} >= {target:g}"]})
        lines.append("")
        if advice.thin_labels:  # top the thin labels up from a teacher, checked before they train
            lines += render_section(
                "synth",
                {
                    "teacher": {"endpoint": TEACHER_EXAMPLE, "model": "teacher"},
                    "kinds": ["paraphrase", "same_label"],
                    "per_label": MIN_LABEL_ROWS * 2,
                },
            )
            lines.append("")
    if advice.choice in ("retrieve", "both"):
        lines.append("# Merge into your data section: the documents retrieval answers from.")
        lines += ["data:", "  documents:", '    paths: ["docs/**/*.md"]']
        if answers.get("access_groups"):  # each group sees public documents and its own
            lines += ["    access:", '      - paths: ["docs/internal/*"]', "        groups: [staff]"]
        lines.append("")
        lines += retrieval_section(answers)
        lines.append("")
    if advice.choice == "neither":
        lines += [
            "# Neither fine-tuning nor retrieval: prompt the base model (or a larger hosted one) and keep a gold set",
            "# to measure it. Run `slmkit advise` again when the task, its volume or its documents change.",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def retrieval_section(answers: dict[str, Any], config_model: type[BaseModel] = ProjectConfig) -> list[str]:
    """`task.retrieval` from the config's model when it has one; a commented block until then."""
    from slmkit.templates import _section_model, render_section

    task_model = _section_model(config_model.model_fields["task"].annotation)
    if task_model is not None and "retrieval" in task_model.model_fields:
        settings = _section_model(task_model.model_fields["retrieval"].annotation)
        try:
            values = settings().model_dump(mode="json") if settings is not None else {}
        except Exception:  # required settings: each shown with its help text, for the user to fill in
            values = {}
        lines = ["# Merge into your task section (retrieval needs task.refusal: the answer when nothing is found)."]
        return lines + render_section("task.retrieval", values, config_model)
    block = [
        "# retrieval: this slmkit has no retrieval stage yet; once it does, set it here:",
        "# retrieval:",
        "#   top_k: 3                    # passages placed in the prompt",
    ]
    if answers.get("citations"):
        block.append("#   citations: true             # answers name the chunk they used")
    return block
