"""LLM-as-judge for free-text output fields, through any OpenAI-compatible endpoint.

The judge sees the rubric, the input, the gold answer as reference and the candidate, and must
answer JSON {"score": int, "reason": str}. An answer that cannot be scored (the call failed in
transport, the reply is not that JSON, the score is off the scale) is counted as unscorable with
its reason, never averaged in as zero. Judge scores are reported next to the task metrics, never
alone: a judge is a model too, and it can be wrong.

Human scores for some items (`eval.judge.labels_file`, CSV `id,human_score[,answer]`) give the
judge's agreement with people: quadratic-weighted Cohen's kappa, the one for an ordinal scale.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from slmkit.config import JudgeConfig, plain_http_off_host
from slmkit.errors import DataError, StageError
from slmkit.eval.metrics import Metric, bootstrap
from slmkit.eval.paired import cohen_kappa, quadratic_kappa
from slmkit.task import Parsed

SYSTEM = (
    "You grade answers against a rubric. Compare the candidate with the reference answer for the given "
    'input. Reply with JSON only: {{"score": <integer from {low} to {high}>, "reason": "<one sentence>"}}.'
)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


@dataclass(frozen=True)
class JudgeItem:
    id: str
    input: str
    reference: dict[str, Any]  # the gold values of the judged fields
    candidate: Any  # the answer's judged fields, or its raw text when it is not JSON


@dataclass(frozen=True)
class Verdict:
    id: str
    score: int | None  # None: unscorable
    reason: str  # the judge's reason, or why there is no score
    unscorable: str | None = None  # transport | unparseable | out_of_scale


@dataclass(frozen=True)
class JudgeSummary:
    items: int
    scored: int
    unscorable: dict[str, int]  # kind -> count
    mean: Metric  # over scored items only, with a bootstrap interval

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_items": self.items,
            "n_scored": self.scored,
            "n_unscorable": sum(self.unscorable.values()),
            "unscorable": self.unscorable,
            "mean_score": self.mean.as_dict(),
        }

    def line(self, side: str) -> str:
        mean = self.mean
        ci = f" [95% CI {mean.low:.2f}-{mean.high:.2f}]" if self.scored else ""
        value = f"{mean.value:.2f}" if self.scored else "n/a"
        return (
            f"judge ({side}): mean score {value}{ci} over {self.scored} scored, "
            f"{sum(self.unscorable.values())} unscorable of {self.items}"
        )


@dataclass
class JudgeOutcome:
    section: dict[str, Any]  # report.json "judge"
    summaries: dict[str, JudgeSummary]  # side -> summary

    def lines(self) -> list[str]:
        lines = [summary.line(side) for side, summary in self.summaries.items()]
        agreed = self.section.get("human_agreement")
        if agreed and agreed["n"]:
            lines.append(
                f"judge vs human scores on {agreed['n']} items: quadratic kappa {agreed['quadratic_kappa']:.3f}"
            )
        return lines


def run_judge(
    settings: JudgeConfig,
    *,
    task_metrics: Mapping[str, Mapping[str, Metric]],
    ids: Sequence[str],
    inputs: Sequence[str],
    gold: Sequence[dict[str, Any]],
    predictions: Mapping[str, Sequence[Parsed]],  # side -> answers
    labels_path: Path | None = None,
    rounds: int = 1000,
) -> JudgeOutcome:
    """Judge each side's answers on the first `max_items` gold items; the report section and summaries."""
    if not task_metrics or not all(task_metrics.values()):
        raise StageError(
            "judge scores are reported next to the task metrics, never alone",
            hint="compute the task metrics first (run_eval does); a judge can be wrong",
        )
    count = min(len(ids), settings.max_items or len(ids))
    verdicts: dict[str, list[Verdict]] = {}
    for side, parsed in predictions.items():
        items = [
            JudgeItem(ids[i], inputs[i], {f: gold[i].get(f) for f in settings.fields}, _candidate(parsed[i], settings))
            for i in range(count)
        ]
        verdicts[side] = judge_items(settings, items)
    summaries = {side: summarize(v, rounds=rounds) for side, v in verdicts.items()}
    section: dict[str, Any] = {
        "endpoint": settings.endpoint,
        "model": settings.model,
        "fields": settings.fields,
        "scale": list(settings.scale),
        "rubric": settings.rubric,
        "temperature": settings.temperature,
        "summary": {side: summary.as_dict() for side, summary in summaries.items()},
        "items": {side: verdict_dicts(v) for side, v in verdicts.items()},
    }
    if labels_path is not None and "adapter" in verdicts:
        answers = {ids[i]: predictions["adapter"][i].text for i in range(count)}
        section["human_agreement"] = agreement(verdicts["adapter"], answers, read_labels(labels_path))
    return JudgeOutcome(section, summaries)


def _candidate(parsed: Parsed, settings: JudgeConfig) -> Any:
    value = parsed.value if parsed.is_json else None
    return {f: value.get(f) for f in settings.fields} if isinstance(value, dict) else parsed.text


def judge_items(settings: JudgeConfig, items: Sequence[JudgeItem]) -> list[Verdict]:
    """One verdict per item, in order; at most `settings.concurrency` calls in flight."""
    from openai import OpenAI

    if settings.endpoint is None:
        raise StageError("eval.judge.endpoint is not set", hint="point it at an OpenAI-compatible server")
    if plain_http_off_host(settings.endpoint) and not settings.allow_plain_http:
        raise StageError(
            f"refusing to send the judge's key and answers in clear to {settings.endpoint}",
            hint="use https://, or set eval.judge.allow_plain_http: true if that network is trusted",
        )
    key = os.environ.get(settings.api_key_env, "") if settings.api_key_env else ""
    if settings.api_key_env and not key:
        raise StageError(
            f"eval.judge.api_key_env names {settings.api_key_env}, which is not set",
            hint=f"export {settings.api_key_env}=<the judge's key>, or unset eval.judge.api_key_env",
        )
    # The client's own retries also repeat 429/5xx answers; ours repeat transport failures only.
    client = OpenAI(base_url=settings.endpoint, api_key=key or "none", timeout=settings.timeout_s, max_retries=0)
    structured = [True]  # flips once when the server refuses response_format

    def one(item: JudgeItem) -> Verdict:
        return _judge_one(client, settings, item, structured)

    with ThreadPoolExecutor(max_workers=settings.concurrency) as pool:
        return list(pool.map(one, items))


def judge_messages(settings: JudgeConfig, item: JudgeItem) -> list[dict[str, str]]:
    low, high = settings.scale
    user = (
        f"Rubric:\n{settings.rubric}\n\nInput:\n{item.input}\n\n"
        f"Reference answer:\n{json.dumps(item.reference, ensure_ascii=False, indent=1)}\n\n"
        f"Candidate answer:\n{_show(item.candidate)}"
    )
    return [{"role": "system", "content": SYSTEM.format(low=low, high=high)}, {"role": "user", "content": user}]


def _judge_one(client: Any, settings: JudgeConfig, item: JudgeItem, structured: list[bool]) -> Verdict:
    import openai

    low, high = settings.scale
    schema = {
        "type": "object",
        "properties": {"score": {"type": "integer", "minimum": low, "maximum": high}, "reason": {"type": "string"}},
        "required": ["score", "reason"],
        "additionalProperties": False,
    }
    request: dict[str, Any] = {
        "model": settings.model,
        "messages": judge_messages(settings, item),
        "temperature": settings.temperature,
    }
    structured_format = {"type": "json_schema", "json_schema": {"name": "judgement", "schema": schema}}
    tries, failure = 0, ""
    while tries <= settings.max_retries:
        asked_structured = structured[0]
        try:
            reply = client.chat.completions.create(
                **request, **({"response_format": structured_format} if asked_structured else {})
            )
        except openai.BadRequestError as exc:
            if asked_structured and "response_format" in str(exc):
                structured[0] = False  # the server has no structured output: ask again and parse tolerantly
                continue
            return Verdict(item.id, None, f"the judge refused the request: {exc}", "transport")
        except openai.APIConnectionError as exc:  # includes timeouts: worth another try
            tries, failure = tries + 1, f"{type(exc).__name__}: {exc}"
            continue
        except openai.APIStatusError as exc:
            return Verdict(item.id, None, f"the judge answered HTTP {exc.status_code}: {exc.message}", "transport")
        text = reply.choices[0].message.content if reply.choices else None
        return parse_verdict(item.id, text or "", settings.scale)
    return Verdict(item.id, None, f"no answer after {tries} tries ({failure})", "transport")


def parse_verdict(item_id: str, text: str, scale: tuple[int, int]) -> Verdict:
    """The judge's reply read as {"score": int, "reason": str}; code fences and prose around the object are
    tolerated, anything else is unscorable with the reason."""
    body = _FENCE.sub("", text.strip())
    start, end = body.find("{"), body.rfind("}")
    try:
        value = json.loads(body[start : end + 1]) if start >= 0 else None
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        return Verdict(item_id, None, f"not a JSON object: {text[:120]!r}", "unparseable")
    score, reason = value.get("score"), value.get("reason")
    if isinstance(score, bool) or not isinstance(score, int) or not isinstance(reason, str):
        return Verdict(item_id, None, f"needs an integer score and a string reason: {text[:120]!r}", "unparseable")
    if not scale[0] <= score <= scale[1]:
        return Verdict(
            item_id, None, f"score {score} is off the scale {scale[0]}-{scale[1]} ({reason})", "out_of_scale"
        )
    return Verdict(item_id, score, reason)


def summarize(verdicts: Sequence[Verdict], *, rounds: int = 1000) -> JudgeSummary:
    scores = [v.score for v in verdicts if v.score is not None]
    unscorable = Counter(v.unscorable for v in verdicts if v.score is None)
    if scores:
        mean = sum(scores) / len(scores)
        low, high = bootstrap(lambda idx: sum(scores[i] for i in idx) / len(idx), len(scores), rounds=rounds)
        metric = Metric(mean, low, high, len(scores))
    else:
        metric = Metric(float("nan"), float("nan"), float("nan"), 0)
    return JudgeSummary(len(verdicts), len(scores), {str(k): n for k, n in sorted(unscorable.items())}, metric)


def read_labels(path: Path) -> dict[str, tuple[int, str | None]]:
    """id -> (human score, the answer it scored, when the file says)."""
    if not path.is_file():
        raise DataError(f"eval.judge.labels_file not found: {path}", hint="a CSV with columns id,human_score")
    labels: dict[str, tuple[int, str | None]] = {}
    with open(path, newline="", encoding="utf-8") as lines:
        for number, row in enumerate(csv.DictReader(lines), 2):
            try:
                labels[str(row["id"])] = (int(row["human_score"]), row.get("answer"))
            except (KeyError, TypeError, ValueError):
                raise DataError(
                    f"{path}:{number}: needs an id and an integer human_score", hint="columns: id,human_score[,answer]"
                ) from None
    return labels


def agreement(
    verdicts: Sequence[Verdict], answers: dict[str, str], labels: dict[str, tuple[int, str | None]]
) -> dict[str, Any]:
    """The judge against human scores on the items both scored. A label whose `answer` is not the answer
    judged now scored a different answer (an earlier run): it is counted as stale, not compared."""
    judged, human, stale = [], [], 0
    for verdict in verdicts:
        if verdict.id not in labels or verdict.score is None:
            continue
        score, answer = labels[verdict.id]
        if answer is not None and answer.strip() and answer.strip() != answers.get(verdict.id, "").strip():
            stale += 1
            continue
        judged.append(verdict.score)
        human.append(score)
    return {
        "n": len(judged),
        "stale_labels": stale,
        "quadratic_kappa": quadratic_kappa(judged, human),
        "cohen_kappa": cohen_kappa(judged, human),
        "exact_agreement": sum(a == b for a, b in zip(judged, human, strict=True)) / len(judged) if judged else None,
    }


def verdict_dicts(verdicts: Sequence[Verdict]) -> list[dict[str, Any]]:
    return [{k: v for k, v in asdict(verdict).items() if v is not None} for verdict in verdicts]


def _show(candidate: Any) -> str:
    return candidate if isinstance(candidate, str) else json.dumps(candidate, ensure_ascii=False, indent=1)
