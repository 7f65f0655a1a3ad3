"""The production review queue: captured requests a person should look at, drawn by strata.

`build_queue` (`slmkit review queue --traffic`) adds up to monitor.review.size captured requests
(monitor.capture) to the queue, each under the stratum that chose it:

- random: a uniform draw from the traffic captured since the last draw (the batch's window).
  Its reviewed items estimate production accuracy without bias, with a Wilson interval, and
  give the next training set rows that are not only hard cases. It is drawn first, from the
  whole window, so the other strata cannot tilt it.
- flagged: inputs the monitor flagged as unlike the training inputs, the most novel first;
- refused: refusals and escalations, the least confident first;
- low_confidence: the least confident answers.
The three hard-case strata draw from every captured request not queued yet (any window); a
stratum with too few candidates passes its places on (flagged -> refused -> low_confidence, then
back to the first with candidates to spare); the random share never takes more than its own. A
request is queued at most once (the table's key), so an item never appears twice and an answered
item never comes back. Queued requests are copied out of `captures`: retention cannot take one
away from a reviewer (an unreviewed one still goes when its capture would, see capture.py).

Answers are append-only rows of `review_answers`, the newest per request current. Accepted and
corrected items become training data through `slmkit.monitor.reviewed`.
"""

from __future__ import annotations

import json
import math
import random
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from slmkit.config import STRATA, TrafficReviewConfig
from slmkit.monitor.requests import RequestLog, now

ITEM_PREFIX = "requests.db#"
VERDICTS = ("accept", "correct", "reject")
# Where a stratum's unfilled places go when it has too few candidates.
_HARD_ORDER = ("flagged", "refused", "low_confidence")
_COPIED = (
    "request_id, ts, release_name, release_version, messages, answer, label, confidence, refused, escalate, "
    "flagged, novelty"
)


@dataclass(frozen=True)
class ReviewAnswer:
    request_id: str
    verdict: str  # accept / correct / reject
    correction: Any  # the right answer, for `correct`
    note: str
    reviewer: str
    answered_at: str
    via: str  # console, cli, csv, label-studio, argilla (and the file)


@dataclass(frozen=True)
class QueueItem:
    """A queued request as the reviewer sees it (already PII-redacted when it was captured)."""

    request_id: str
    batch: int
    stratum: str
    ts: str
    release: str | None  # name@version that answered
    messages: list[dict[str, Any]]
    answer: str | None
    label: str | None
    confidence: float | None
    refused: bool
    escalate: bool
    flagged: bool
    novelty: float | None
    current: ReviewAnswer | None = None

    @property
    def id(self) -> str:
        return ITEM_PREFIX + self.request_id

    @property
    def user_turns(self) -> list[Any]:
        return [m.get("content") for m in self.messages if m.get("role") == "user"]

    @property
    def input(self) -> Any:
        """The last user turn: a record of the task's input fields, or text."""
        turns = self.user_turns
        return turns[-1] if turns else ""

    def input_text(self) -> str:
        value = self.input
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@dataclass
class QueueBuild:
    """What one draw added: items per stratum, the window it drew the random share from."""

    batch: int | None
    window_from: str | None
    window_to: str | None
    population: int  # requests captured in the window (the random share's population)
    candidates: int  # captured requests not queued before (the hard-case strata's population)
    counts: dict[str, int] = field(default_factory=dict)
    wanted: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        if self.batch is None:
            return ["no captured requests to queue (monitor.capture.share is 0, or everything was queued already)"]
        added = sum(self.counts.values())
        lines = [
            f"queue #{self.batch}: {added} requests added; random share drawn from {self.population} captured "
            f"{'after ' + self.window_from if self.window_from else 'up to'} {self.window_to}",
        ]
        for stratum in STRATA:
            short = self.wanted.get(stratum, 0) - self.counts.get(stratum, 0)
            note = f" ({short} fewer than its share: too few candidates)" if short > 0 else ""
            lines.append(f"  {stratum:<15}{self.counts.get(stratum, 0):>5}{note}")
        return lines


@dataclass(frozen=True)
class Estimate:
    """Production accuracy of one release from its reviewed random-share items."""

    release: str
    reviewed: int
    accepted: int
    value: float
    low: float
    high: float
    label_right: int | None = None  # accepted, or corrected keeping the answer's label
    label_value: float | None = None
    label_low: float | None = None
    label_high: float | None = None

    def line(self) -> str:
        text = (
            f"{self.release}: answers right {self.accepted}/{self.reviewed} = {self.value:.3f} "
            f"[95% CI {self.low:.3f}-{self.high:.3f}]"
        )
        if self.label_value is not None:
            text += f"; label right {self.label_value:.3f} [95% CI {self.label_low:.3f}-{self.label_high:.3f}]"
        return text + " (random share, reviewed)"


def quotas(size: int, shares: dict[str, float]) -> dict[str, int]:
    """Whole places per stratum adding up to `size` (largest remainder, ties in STRATA order)."""
    raw = {name: size * shares[name] for name in STRATA}
    places = {name: math.floor(value) for name, value in raw.items()}
    left = size - sum(places.values())
    for name in sorted(STRATA, key=lambda n: (-(raw[n] - places[n]), STRATA.index(n)))[:left]:
        places[name] += 1
    return places


def build_queue(
    log: RequestLog, settings: TrafficReviewConfig, *, size: int | None = None, actor: str = ""
) -> QueueBuild:
    """Draw the next batch of captured requests into the queue (one transaction)."""
    size = size or settings.size
    wanted = quotas(size, settings.shares())
    with log.transaction() as conn:
        window_from = conn.execute("SELECT MAX(window_to) FROM review_batches").fetchone()[0]
        fresh = _rows(
            conn,
            "SELECT * FROM captures WHERE request_id NOT IN (SELECT request_id FROM review_queue) "
            "ORDER BY ts, request_id",
        )
        if not fresh:
            return QueueBuild(None, window_from, None, 0, 0, wanted=wanted)
        window = [r for r in fresh if window_from is None or r["ts"] > window_from]
        window_to = max(r["ts"] for r in fresh)
        batch_no = int(conn.execute("SELECT COUNT(*) FROM review_batches").fetchone()[0]) + 1
        chosen: dict[str, str] = {}  # request id -> stratum
        rng = random.Random(f"{settings.seed}:{batch_no}")
        for row in rng.sample(window, min(wanted["random"], len(window))):
            chosen[row["request_id"]] = "random"
        pool = [r for r in fresh if r["request_id"] not in chosen]
        ranked = {stratum: _ranked(stratum, pool) for stratum in _HARD_ORDER}
        carry = 0
        # Twice round: a stratum's unfilled places pass on, and what is still left over goes back to
        # the first strata that have candidates to spare.
        for rounds, stratum in enumerate([*_HARD_ORDER, *_HARD_ORDER]):
            room = wanted[stratum] + carry if rounds < len(_HARD_ORDER) else carry
            picked = [r for r in ranked[stratum] if r["request_id"] not in chosen][:room]
            for row in picked:
                chosen[row["request_id"]] = stratum
            carry = room - len(picked)
        counts = Counter(chosen.values())
        cur = conn.execute(
            "INSERT INTO review_batches (created_at, created_by, window_from, window_to, population, counts, settings)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                now(),
                actor,
                window_from,
                window_to,
                len(window),
                json.dumps(dict(counts), sort_keys=True),
                json.dumps({**settings.model_dump(), "size": size}, sort_keys=True),
            ),
        )
        batch = int(cur.lastrowid or 0)
        stamp = now()
        by_id = {r["request_id"]: r for r in fresh}
        conn.executemany(
            f"INSERT INTO review_queue (batch, stratum, queued_at, {_COPIED}) VALUES "
            f"(?, ?, ?, {', '.join('?' * len(_COPIED.split(',')))})",
            [
                (batch, stratum, stamp, *(by_id[rid][c.strip()] for c in _COPIED.split(",")))
                for rid, stratum in sorted(chosen.items())
            ],
        )
    return QueueBuild(batch, window_from, window_to, len(window), len(fresh), dict(counts), wanted)


def _ranked(stratum: str, pool: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pool's candidates for a hard-case stratum, most urgent first (ties by request id)."""

    def least_sure(row: dict[str, Any]) -> tuple[float, str]:
        conf = row["confidence"]
        return (math.inf if conf is None else float(conf), row["request_id"])

    if stratum == "flagged":
        flagged = [r for r in pool if r["flagged"]]
        return sorted(flagged, key=lambda r: (-(r["novelty"] or 0.0), r["request_id"]))
    if stratum == "refused":
        return sorted([r for r in pool if r["refused"] or r["escalate"]], key=least_sure)
    return sorted([r for r in pool if r["confidence"] is not None], key=least_sure)


def _rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


# --- reading the queue ----------------------------------------------------------------------------


def queue_items(log: RequestLog, *, open_only: bool = False, ids: set[str] | None = None) -> list[QueueItem]:
    """Queued requests with their current answer, oldest batch first, then by stratum and request id."""
    answers = current_answers(log)
    rows = [dict(r) for r in log.read("SELECT * FROM review_queue ORDER BY batch, stratum, request_id")]
    items = []
    for row in rows:
        if ids is not None and row["request_id"] not in ids:
            continue
        current = answers.get(row["request_id"])
        if open_only and current is not None:
            continue
        release = f"{row['release_name']}@{row['release_version']}" if row["release_name"] else None
        items.append(
            QueueItem(
                request_id=row["request_id"],
                batch=row["batch"],
                stratum=row["stratum"],
                ts=row["ts"],
                release=release,
                messages=json.loads(row["messages"]),
                answer=row["answer"],
                label=row["label"],
                confidence=row["confidence"],
                refused=bool(row["refused"]),
                escalate=bool(row["escalate"]),
                flagged=bool(row["flagged"]),
                novelty=row["novelty"],
                current=current,
            )
        )
    return items


def current_answers(log: RequestLog) -> dict[str, ReviewAnswer]:
    """request id -> its newest answer."""
    rows = log.read(
        "SELECT * FROM review_answers WHERE id IN (SELECT MAX(id) FROM review_answers GROUP BY request_id) ORDER BY id"
    )
    return {
        r["request_id"]: ReviewAnswer(
            r["request_id"],
            r["verdict"],
            None if r["correction"] is None else json.loads(r["correction"]),
            r["note"],
            r["reviewer"],
            r["answered_at"],
            r["via"],
        )
        for r in rows
    }


def record_answers(log: RequestLog, answers: list[ReviewAnswer]) -> int:
    """Append answers in one transaction (already checked by the caller: slmkit.monitor.review_io)."""
    if not answers:
        return 0
    with log.transaction() as conn:
        known = {r[0] for r in conn.execute("SELECT request_id FROM review_queue")}
        missing = [a.request_id for a in answers if a.request_id not in known]
        if missing:  # checked before, so only a queue purged meanwhile gets here
            raise ValueError(f"not in the review queue: {', '.join(missing[:5])}")
        conn.executemany(
            "INSERT INTO review_answers (request_id, verdict, correction, note, reviewer, answered_at, via) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    a.request_id,
                    a.verdict,
                    None if a.correction is None else json.dumps(a.correction, ensure_ascii=False),
                    a.note,
                    a.reviewer,
                    a.answered_at,
                    a.via,
                )
                for a in answers
            ],
        )
    return len(answers)


def reviewed_since(log: RequestLog, moment: str | None) -> int:
    """Requests answered (accept, correct or reject) after `moment` (all of them when None)."""
    sql = "SELECT COUNT(DISTINCT request_id) FROM review_answers WHERE answered_at > ? OR ? IS NULL"
    return int(log.read(sql, (moment, moment))[0][0])


def estimates(items: list[QueueItem], label_field: str | None) -> list[Estimate]:
    """Production accuracy per answering release, from its random-share items that were reviewed.

    An answer is right when accepted; its label is right when accepted or corrected to an answer
    with the same label (a rejected answer's label is unknown, so it counts as wrong).
    """
    from slmkit.eval.metrics import wilson

    by_release: dict[str, list[QueueItem]] = {}
    for item in items:
        if item.stratum == "random" and item.current is not None and item.release:
            by_release.setdefault(item.release, []).append(item)
    out = []
    for release, reviewed in sorted(by_release.items()):
        accepted = sum(i.current is not None and i.current.verdict == "accept" for i in reviewed)
        answers = wilson(accepted, len(reviewed))
        label = None
        if label_field is not None:
            right = sum(_label_right(i, label_field) for i in reviewed)
            label = (right, wilson(right, len(reviewed)))
        out.append(
            Estimate(
                release,
                len(reviewed),
                accepted,
                answers.value,
                answers.low,
                answers.high,
                *((label[0], label[1].value, label[1].low, label[1].high) if label else ()),
            )
        )
    return out


def _label_right(item: QueueItem, label_field: str) -> bool:
    answer = item.current
    if answer is None or answer.verdict == "reject":
        return False
    if answer.verdict == "accept":
        return True
    return isinstance(answer.correction, dict) and answer.correction.get(label_field) == item.label
