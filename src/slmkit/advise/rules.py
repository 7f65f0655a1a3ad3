"""The playbook's decision: fine-tune, retrieve, both or neither, from answers and the project's evidence.

Fine-tuning pays off for a task that is bounded (a fixed label set or output format), repetitive
(the same kind of request keeps coming) and measurable (a gold set can say right or wrong), and
where prompting alone falls short: the format, tone or routing must be exact, the base model
scores under the target zero-shot, or the latency budget rules out a large prompted model.
Retrieval pays off where answers rest on facts that change faster than one would retrain, must
cite their source, or depend on what each user group may see. Both when both hold; neither
when neither does. Every reason names what it rests on: an answer (a flag, the prompt, or
`advise:` in slmkit.yaml) or a measurement of the project. An unanswered question is never
taken as yes; the advice lists it, since answering it could change the choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Choice = Literal["fine-tune", "retrieve", "both", "neither"]

QUESTIONS: dict[str, str] = {
    "bounded": "Is the task bounded: a fixed label set or output format, not open-ended writing?",
    "repetitive": "Does the same kind of request arrive again and again (hundreds a day or more)?",
    "measurable": "Can a right answer be checked against a gold set (labels, fields, exact values)?",
    "format_sensitive": "Must the format, tone or routing be exact, where prompting keeps getting it wrong?",
    "changing_facts": "Do answers depend on facts that change faster than you would retrain (prices, policies)?",
    "citations": "Must answers cite the document they come from?",
    "access_groups": "May different user groups see different documents?",
    "latency_ms": "What is the latency budget per answer, in milliseconds (blank: none)?",
}
TIGHT_LATENCY_MS = 300  # under this, a large prompted model (or a long retrieved context) rarely keeps up
MIN_LABEL_ROWS = 10  # a label with fewer training rows is too thin to learn
DOMINANT_SHARE = 0.9  # one label this common: a constant answer already scores this well
CHANGES_PER_MONTH = 1.0  # a corpus that changes this often outpaces retraining


@dataclass(frozen=True)
class Signal:
    """One input to the decision: its value and where it comes from."""

    value: Any
    source: str  # "you said so (--bounded)", or the measurement it was read from


@dataclass(frozen=True)
class Evidence:
    """What the project itself shows; None where there is nothing to read yet."""

    rows: int | None = None
    labels: dict[str, int] | None = None  # training rows per label
    label_entropy: float | None = None  # normalized to 0-1
    input_diversity: float | None = None  # distinct words / words over a sample of inputs
    near_duplicate_share: float | None = None
    gold_rows: int | None = None
    dataset: str | None = None
    corpus_changes: tuple[int, float] | None = None  # (changes seen, over this many days)
    zero_shot: dict[str, Any] | None = None  # {"metric", "value", "low", "high", "n", "source"}


@dataclass(frozen=True)
class Reason:
    points_to: str  # fine-tune | no fine-tune | retrieve | caution
    text: str
    evidence: str


@dataclass
class Advice:
    choice: Choice
    reasons: list[Reason] = field(default_factory=list)
    cautions: list[Reason] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    signals: dict[str, Signal] = field(default_factory=dict)
    thin_labels: list[str] = field(default_factory=list)  # labels with too few rows to learn

    def lines(self) -> list[str]:
        out = [f"advice: {self.choice.upper()}"]
        out += [f"  - {r.text}  [{r.evidence}]" for r in self.reasons]
        if self.cautions:
            out.append("cautions:")
            out += [f"  - {r.text}  [{r.evidence}]" for r in self.cautions]
        if self.unanswered:
            out.append("unanswered (answering these could change the advice):")
            out += [f"  - {name}: {QUESTIONS[name]}" for name in self.unanswered]
        return out


def decide(answers: dict[str, Any], answer_source: dict[str, str], evidence: Evidence, target: float) -> Advice:
    """The advice for these answers and this evidence; `answer_source` says where each answer came from."""
    signals = _signals(answers, answer_source, evidence, target)
    reasons: list[Reason] = []
    cautions: list[Reason] = []

    def yes(name: str) -> bool:
        return name in signals and signals[name].value is True

    def no(name: str) -> bool:
        return name in signals and signals[name].value is False

    shape = [name for name in ("bounded", "repetitive", "measurable") if not yes(name)]
    zero = evidence.zero_shot
    already_good = zero is not None and zero["value"] >= target
    latency = signals.get("latency_ms")
    tight = latency is not None and latency.value < TIGHT_LATENCY_MS
    pulls = [name for name in ("format_sensitive", "zero_shot_short") if yes(name)]
    if tight:
        pulls.append("latency_ms")

    fine_tune = not shape and bool(pulls) and not already_good
    if not shape:
        for name in ("bounded", "repetitive", "measurable"):
            reasons.append(Reason("fine-tune", _FOR[name], signals[name].source))
        for name in pulls:
            reasons.append(
                Reason("fine-tune", _FOR[name].format(ms=latency.value if latency else 0), signals[name].source)
            )
    else:
        for name in shape:
            if no(name):
                reasons.append(Reason("no fine-tune", _AGAINST[name], signals[name].source))
        open_questions = [name for name in shape if not no(name)]
        if open_questions and len(open_questions) == len(shape):
            reasons.append(
                Reason(
                    "no fine-tune",
                    f"fine-tuning needs {', '.join(open_questions)} to be yes, and nothing says so yet",
                    "no answer and no measurement",
                )
            )
    if already_good and zero is not None:
        reasons.append(
            Reason(
                "no fine-tune",
                f"the base model already scores {zero['value']:.2f} zero-shot, at or above the target {target:.2f}: "
                "prompting it is enough, fine-tuning would add a model to keep",
                zero["source"],
            )
        )
    elif not shape and not pulls:
        reasons.append(
            Reason(
                "no fine-tune",
                "nothing shows prompting falls short: answer format_sensitive, give a latency budget, or let "
                "`slmkit advise --quick-eval N` measure the base model on the gold set",
                "no answer and no measurement",
            )
        )

    retrieval_needs = [name for name in ("changing_facts", "citations", "access_groups") if yes(name)]
    for name in retrieval_needs:
        reasons.append(Reason("retrieve", _FOR[name], signals[name].source))
    retrieve = bool(retrieval_needs)

    choice: Choice = (
        "both" if fine_tune and retrieve else "fine-tune" if fine_tune else "retrieve" if retrieve else "neither"
    )
    if choice in ("fine-tune", "both") and evidence.labels:
        thin = sorted(name for name, n in evidence.labels.items() if n < MIN_LABEL_ROWS)
        if thin:
            cautions.append(
                Reason(
                    "caution",
                    f"{len(thin)} label(s) have fewer than {MIN_LABEL_ROWS} training rows ({', '.join(thin[:6])}): "
                    "collect more, or top them up with `slmkit synth` (synth.per_label)",
                    f"rows per label in {evidence.dataset}",
                )
            )
        total = sum(evidence.labels.values())
        top_label, top_n = max(evidence.labels.items(), key=lambda kv: kv[1])
        if total and top_n / total >= DOMINANT_SHARE:
            cautions.append(
                Reason(
                    "caution",
                    f"'{top_label}' is {top_n / total:.0%} of the training rows: always answering it scores as much, "
                    "so gate on macro-F1, not accuracy",
                    f"label entropy {evidence.label_entropy:.2f} in {evidence.dataset}",
                )
            )
    if retrieve and tight and latency is not None:
        cautions.append(
            Reason(
                "caution",
                f"retrieval adds a search and a longer prompt: measure it against the {latency.value} ms budget",
                latency.source,
            )
        )
    if choice == "neither" and tight and latency is not None and shape:
        cautions.append(
            Reason(
                "caution",
                f"a large prompted model rarely answers within {latency.value} ms; if the task can be made bounded "
                "and measurable, a small fine-tuned model can",
                latency.source,
            )
        )
    unanswered = [name for name in QUESTIONS if name not in signals]
    thin = sorted(n for n, rows in (evidence.labels or {}).items() if rows < MIN_LABEL_ROWS)
    return Advice(choice, reasons, cautions, unanswered, signals, thin if choice in ("fine-tune", "both") else [])


_FOR = {
    "bounded": "the task is bounded: a fixed output a small model can learn exactly",
    "repetitive": "requests repeat: the volume pays for a model of your own",
    "measurable": "a gold set can say right or wrong, so a fine-tune can be gated and compared",
    "format_sensitive": "the format, tone or routing must be exact, which fine-tuning fixes and prompting does not",
    "zero_shot_short": "the base model falls short of the target zero-shot: prompting alone is not enough",
    "latency_ms": "a {ms} ms budget favours a small fine-tuned model over a large prompted one",
    "changing_facts": "answers rest on facts that change: retrieve them at answer time instead of training them in",
    "citations": "answers must cite their source: retrieval knows which passage it used",
    "access_groups": "user groups see different documents: retrieval filters by group, weights cannot",
}
_AGAINST = {
    "bounded": "the task is open-ended: a small fine-tuned model learns a fixed format, not open writing",
    "repetitive": "requests are few or all different: a model of your own will not pay for itself",
    "measurable": "without a gold set nobody can tell whether a fine-tune helped: write one first",
}


def _signals(answers: dict[str, Any], source: dict[str, str], evidence: Evidence, target: float) -> dict[str, Signal]:
    """Answers first; where a question is unanswered, what the project's evidence says (if anything)."""
    signals = {
        name: Signal(value, source.get(name, "you said so")) for name, value in answers.items() if value is not None
    }
    where = f" in {evidence.dataset}" if evidence.dataset else ""
    if "bounded" not in signals and evidence.labels:
        signals["bounded"] = Signal(True, f"task.label_field has {len(evidence.labels)} labels")
    if "repetitive" not in signals and evidence.rows is not None and evidence.rows >= 100:
        signals["repetitive"] = Signal(True, f"{evidence.rows} labelled rows of this one task{where}")
    if "measurable" not in signals and evidence.gold_rows:
        signals["measurable"] = Signal(True, f"a locked gold set of {evidence.gold_rows} rows")
    zero = evidence.zero_shot
    if zero is not None and zero["value"] < target:
        signals["zero_shot_short"] = Signal(
            True,
            f"{zero['source']}: {zero['metric']} {zero['value']:.2f} [95% CI {zero['low']:.2f}-{zero['high']:.2f}] "
            f"on {zero['n']} gold items, under the target {target:.2f}",
        )
    if "changing_facts" not in signals and evidence.corpus_changes is not None:
        changes, days = evidence.corpus_changes
        per_month = changes / max(days, 1.0) * 30
        if changes:
            signals["changing_facts"] = Signal(
                per_month >= CHANGES_PER_MONTH,
                f"the document corpus changed {changes} time(s) in {days:.0f} days ({per_month:.1f} a month)",
            )
    return signals
