"""The builder as a reviewer sees it: near copies, gold leaks, groups, PII, tokens, the data card."""

from __future__ import annotations

import json

import pytest

from slmkit.data.normalize import NormalizeError, normalize_field
from slmkit.errors import DataError
from slmkit.registry import Registry
from tests.conftest import read_jsonl
from tests.data.factories import build, jsonl, make_project, ticket

FOLLOW_UP = "\nAny update?"


def _body(n: int) -> str:
    """A ticket body long enough for word shingles, distinct per n."""
    words = ["screen", "battery", "parcel", "refund", "invoice", "charger", "speaker", "camera", "label", "app"]
    picked = " ".join(words[(n * 7 + i * 3) % len(words)] for i in range(8))
    return f"Ticket {n}: the {picked} problem started on day {n} and still happens every morning after {n} tries."


def _rows(count: int, **fields) -> list[dict]:
    return [ticket(n, body=_body(n), **fields) for n in range(count)]


def _by_kind(result) -> dict[str, list[dict]]:
    kinds: dict[str, list[dict]] = {}
    for reject in read_jsonl(result.path / "rejects.jsonl"):
        kinds.setdefault(reject["kind"], []).append(reject)
    return kinds


def _kept_ids(result) -> dict[str, str]:
    return {
        r["id"]: split for split in ("train", "validation", "gold") for r in read_jsonl(result.path / f"{split}.jsonl")
    }


def test_a_near_copy_is_dropped_and_the_first_row_kept(tmp_path):
    rows = _rows(40)
    copy = dict(rows[3], ticket_id="T-copy", body=rows[3]["body"] + FOLLOW_UP)
    result = build(make_project(tmp_path, {"t.jsonl": jsonl([*rows, copy])}))
    near = _by_kind(result)["near_duplicate"]
    assert [r["id"] for r in near] == ["T-copy"]
    assert "data/t.jsonl:4" in near[0]["reason"] and "Jaccard" in near[0]["reason"]
    assert "T-3" in _kept_ids(result)
    assert result.counts["input"] == result.counts["kept"] + result.counts["rejected"]


def test_near_copies_with_different_answers_are_both_rejected_as_a_conflict(tmp_path):
    rows = _rows(40)
    copy = dict(rows[5], ticket_id="T-relabelled", body=rows[5]["body"] + FOLLOW_UP)
    copy["output"] = dict(rows[5]["output"], priority="urgent")
    result = build(make_project(tmp_path, {"t.jsonl": jsonl([*rows, copy])}))
    conflicts = _by_kind(result)["conflict"]
    assert sorted(r["id"] for r in conflicts) == ["T-5", "T-relabelled"]
    assert "priority 'normal' here, 'urgent' there" in next(r for r in conflicts if r["id"] == "T-5")["reason"]
    report = json.loads((result.path / "report.json").read_text())
    assert report["conflicts"]["clusters"] == 1
    assert {row["id"] for row in report["conflicts"]["examples"][0]["rows"]} == {"T-5", "T-relabelled"}


def test_a_near_copy_of_a_gold_row_never_reaches_training(tmp_path):
    rows = _rows(60)
    root = make_project(tmp_path, {"t.jsonl": jsonl(rows)})
    first = build(root)
    gold = read_jsonl(first.path / "gold.jsonl")
    by_id = {r["ticket_id"]: r for r in rows}
    # A copy that comes before its gold original, and a copy of a gold row gone from the sources.
    early = dict(by_id[gold[0]["id"]], ticket_id="T-early", body=by_id[gold[0]["id"]]["body"] + FOLLOW_UP)
    orphan = dict(by_id[gold[1]["id"]], ticket_id="T-orphan", body=by_id[gold[1]["id"]]["body"] + FOLLOW_UP)
    remaining = [r for r in rows if r["ticket_id"] != gold[1]["id"]]
    (root / "data" / "t.jsonl").write_bytes(jsonl([early, *remaining, orphan]))
    second = build(root)
    assert second.gold_reused and second.gold_hash == first.gold_hash
    leaks = {r["id"]: r for r in _by_kind(second)["gold_leak"]}
    assert sorted(leaks) == ["T-early", "T-orphan"]
    assert f"of gold row {gold[0]['id']} (data/t.jsonl:" in leaks["T-early"]["reason"]
    assert f"of gold row {gold[1]['id']} ({gold[1]['source']})" in leaks["T-orphan"]["reason"]
    assert not {"T-early", "T-orphan"} & set(_kept_ids(second))


def test_a_rebuild_on_the_locked_gold_set_gives_the_same_verdicts(tmp_path):
    rows = _rows(60)
    rows += [dict(r, ticket_id=f"{r['ticket_id']}-again", body=r["body"] + FOLLOW_UP) for r in rows[::3]]
    root = make_project(tmp_path, {"t.jsonl": jsonl(rows)})
    first, second = build(root), build(root)
    assert (first.gold_reused, second.gold_reused) == (False, True)
    assert first.counts["rejected_by_reason"] == second.counts["rejected_by_reason"] == {"near_duplicate": 20}
    assert first.version == second.version


def test_group_by_keeps_each_customer_in_one_split(tmp_path):
    rows = _rows(90)
    for n, row in enumerate(rows):
        row["customer_id"] = f"C-{n // 3}"  # 30 customers with 3 tickets each
    root = make_project(tmp_path, {"t.jsonl": jsonl(rows)}, overrides={"data.split.group_by": "customer_id"})
    result = build(root)
    where = _kept_ids(result)
    customer_of = {row["ticket_id"]: row["customer_id"] for row in rows}
    splits_of: dict[str, set[str]] = {}
    for ticket_id, split in where.items():
        splits_of.setdefault(customer_of[ticket_id], set()).add(split)
    assert all(len(s) == 1 for s in splits_of.values())
    assert {s for ss in splits_of.values() for s in ss} == {"train", "validation", "gold"}

    gold_customer = customer_of[read_jsonl(result.path / "gold.jsonl")[0]["id"]]
    newcomer = ticket(500, body=_body(500))
    newcomer["customer_id"] = gold_customer
    (root / "data" / "t.jsonl").write_bytes(jsonl([*rows, newcomer]))
    again = build(root)
    assert [r["id"] for r in _by_kind(again)["gold_group"]] == ["T-500"]


def test_rows_over_the_token_limit_are_rejected_with_their_count(tmp_path):
    rows = _rows(30)
    rows[4]["body"] = " ".join(["The parcel never arrived and nobody answers."] * 60)
    result = build(make_project(tmp_path, {"t.jsonl": jsonl(rows)}, overrides={"data.max_tokens": 500}))
    too_long = _by_kind(result)["too_long"]
    assert [r["id"] for r in too_long] == ["T-4"]
    assert "tokens of smollm2-135m-instruct, over data.max_tokens=500" in too_long[0]["reason"]
    report = json.loads((result.path / "report.json").read_text())
    assert 0 < report["lengths"]["tokens"]["max"] <= 500


def test_personal_data_is_replaced_everywhere_the_build_writes(tmp_path):
    rows = _rows(30)
    rows[2]["body"] += " Reach me at jane.doe@example.com or +44 20 7946 0958, card 4111 1111 1111 1111."
    rows[7]["body"] += " Mail jane.doe@example.com."
    rows[7]["output"]["priority"] = "critical"  # not in the schema: a reject that must still hide the email
    root = make_project(tmp_path, {"t.jsonl": jsonl(rows)}, overrides={"data.pii.canaries": ["4111 1111 1111 1111"]})
    result = build(root)
    written = "".join(p.read_text() for p in result.path.glob("*.json*"))
    assert "jane.doe@example.com" not in written and "4111" not in written and "7946" not in written
    kept = {r["id"]: r for s in ("train", "validation", "gold") for r in read_jsonl(result.path / f"{s}.jsonl")}
    assert "<EMAIL_1>" in kept["T-2"]["input"] and "<PHONE_1>" in kept["T-2"]["input"]
    assert "<EMAIL_1>" in json.dumps(_by_kind(result)["schema"][0]["raw"])
    report = json.loads((result.path / "report.json").read_text())
    assert report["pii"]["by_type"] == {"EMAIL": 1, "CARD": 1, "PHONE": 1} and report["pii"]["rows_with_pii"] == 1
    assert report["pii"]["in_rejects"]["EMAIL"] >= 1
    assert report["pii"]["canaries"] == {"configured": 1, "checked": 1, "survived": 0}


def test_a_surviving_canary_stops_the_build_and_stores_nothing(tmp_path):
    rows = _rows(30)
    rows[3]["body"] += " internal ref ZEBRA-PLANTED-7731"
    root = make_project(tmp_path, {"t.jsonl": jsonl(rows)}, overrides={"data.pii.canaries": ["zebra-planted-7731"]})
    with pytest.raises(DataError, match=r"canary zebr\.\.\. survived PII removal: (train|validation|gold)\.jsonl line"):
        build(root)
    assert Registry(root / ".slmkit").list_datasets("support-tickets") == []


def test_output_normalizers_run_before_the_schema(tmp_path):
    rows = _rows(30)
    rows[1]["output"]["priority"] = "  HIGH "
    result = build(
        make_project(tmp_path, {"t.jsonl": jsonl(rows)}, overrides={"data.normalize": {"priority": "lower"}})
    )
    kept = {r["id"]: r for s in ("train", "validation", "gold") for r in read_jsonl(result.path / f"{s}.jsonl")}
    assert kept["T-1"]["output"]["priority"] == "high"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-3-4", "2026-03-04"),
        ("14.03.2026", "2026-03-14"),
        ("03/14/2026", "2026-03-14"),
        ("Mar 14, 2026", "2026-03-14"),
    ],
)
def test_date_normalizer_reads_common_forms(text, expected):
    assert normalize_field("date", text) == expected


def test_date_normalizer_refuses_to_guess():
    with pytest.raises(NormalizeError, match="ambiguous"):
        normalize_field("date", "03/04/2026")
    with pytest.raises(NormalizeError, match="not a real date"):
        normalize_field("date", "2026-02-30")


def test_the_data_card_and_report_show_every_stage(tmp_path):
    rows = _rows(40)
    rows.append(dict(rows[0], ticket_id="T-again"))
    rows.append(dict(rows[1], ticket_id="T-near", body=rows[1]["body"] + FOLLOW_UP))
    result = build(make_project(tmp_path, {"t.jsonl": jsonl([*rows, "not json"])}))
    report = json.loads((result.path / "report.json").read_text())
    stages = {s["stage"]: s for s in report["stages"]}
    assert stages["read"]["rejected"] == 1 and stages["exact dedup"]["rejected"] == 1
    assert stages["near dedup"]["rejected"] == 1 and stages["semantic dedup"] == {
        "stage": "semantic dedup",
        "skipped": True,
    }
    assert report["duplicates"]["exact"] == {"clusters": 1, "removed": 1}
    assert sum(report["lengths"]["input_chars"]["counts"]["train"]) == result.counts["train"]
    html = (result.path / "report.html").read_text()
    assert result.counts["input"] == 43 and result.counts["rejected"] == 3
    assert "43 in = 40 kept + 3 rejected" in html


def _conversation(n: int) -> dict:
    first = {"category": "billing", "priority": "normal", "order_id": f"ORD-{200000 + n}", "product": None}
    second = {**first, "category": "shipping", "priority": "high"}
    return {
        "conversation": f"C-{n}",
        "messages": [
            {
                "role": "user",
                "content": f"Hi, I am {n} days into a double charge on ORD-{200000 + n}. "
                f"Write to me at buyer{n}@example.com",
            },
            {"role": "assistant", "content": json.dumps(first)},
            {"role": "user", "content": f"Also parcel {n} has not arrived after {n % 7 + 2} weeks of waiting for it."},
            {"role": "assistant", "content": json.dumps(second)},
        ],
    }


def test_chat_logs_parquet_and_documents_go_through_one_build(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    chat = "".join(json.dumps(_conversation(n)) + "\n" for n in range(30)).encode()
    root = make_project(
        tmp_path,
        {"chat.jsonl": chat},
        overrides={
            "task.input_fields": ["message"],
            "task.input_template": None,
            "data.documents.paths": ["docs/*.md"],
        },
    )
    config = yaml_load(root)
    config["data"]["sources"] = [
        {"path": "data/chat.jsonl", "format": "chat", "id_field": "conversation", "chat": {"turns": "all"}},
        {"path": "data/extra.parquet", "columns": {"message": "text"}, "id_field": "ticket_id"},
    ]
    yaml_dump(root, config)
    rows = _rows(20)
    pq.write_table(
        pa.table(
            {
                "ticket_id": [r["ticket_id"] for r in rows],
                "text": [r["body"] for r in rows],
                "output": [json.dumps(r["output"]) for r in rows],
            }
        ),
        root / "data" / "extra.parquet",
    )
    (root / "docs").mkdir()
    (root / "docs" / "refunds.md").write_text(
        "# Refunds\n\nRefunds take 5 days. Questions: refunds-lead@example.com\n\n# Returns\n\nReturn within 30 days.\n"
    )
    result = build(root)
    c = result.counts
    assert c["input"] == 60 + 20 and c["input"] == c["kept"] + c["rejected"]
    kept = [r for s in ("train", "validation", "gold") for r in read_jsonl(result.path / f"{s}.jsonl")]
    turns = [r for r in kept if "#turn" in r["id"]]
    assert turns and all("@example.com" not in json.dumps(r) for r in kept)
    assert any("<EMAIL_1>" in m["content"] for r in turns for m in r.get("history", []))
    where = _kept_ids(result)
    by_conversation: dict[str, set[str]] = {}
    for r in turns:
        by_conversation.setdefault(r["id"].split("#")[0], set()).add(where[r["id"]])
    assert all(len(splits) == 1 for splits in by_conversation.values())  # a conversation never straddles splits
    corpus = read_jsonl(result.path / "corpus.jsonl")
    assert [(chunk["section"], chunk["source"]) for chunk in corpus] == [
        ("Refunds", "docs/refunds.md:3"),
        ("Returns", "docs/refunds.md:7"),
    ]
    assert "<EMAIL_1>" in corpus[0]["text"] and "refunds-lead" not in corpus[0]["text"]
    report = json.loads((result.path / "report.json").read_text())
    assert report["documents"] == {"files": 1, "chunks": 2, "chars": sum(len(ch["text"]) for ch in corpus)}


def yaml_load(root):
    import yaml

    return yaml.safe_load((root / "slmkit.yaml").read_text())


def yaml_dump(root, config) -> None:
    import yaml

    (root / "slmkit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def test_worker_processes_give_the_same_dataset_byte_for_byte(tmp_path):
    rows = _rows(50)
    rows[3]["body"] += " Mail me at someone@example.com"
    rows.append(dict(rows[7], ticket_id="T-near", body=rows[7]["body"] + FOLLOW_UP))
    files = {"t.jsonl": jsonl([*rows, "not json"])}
    alone = build(make_project(tmp_path / "one", files, overrides={"data.workers": 1}))
    pooled = build(make_project(tmp_path / "two", files, overrides={"data.workers": 2}))
    assert pooled.version == alone.version
    assert pooled.report["pii"]["by_type"] == alone.report["pii"]["by_type"] == {"EMAIL": 1}
    assert pooled.counts == alone.counts


def test_extracted_values_that_follow_their_input_are_not_conflicts(tmp_path):
    rows = _rows(40)
    # The same ticket in other letter case: its answer copies the order id as written there.
    shouted = dict(rows[2], ticket_id="T-shouted", body=rows[2]["body"].upper())
    shouted["output"] = dict(rows[2]["output"], order_id=rows[2]["output"]["order_id"].upper())
    # A near copy about another order: a different, correct answer, not a mislabel.
    rows[4]["body"] = _body(4) + " About order ORD-100004."
    other = dict(rows[4], ticket_id="T-other", body=_body(4) + " About order ORD-999999." + FOLLOW_UP)
    other["output"] = dict(rows[4]["output"], order_id="ORD-999999")
    # A near copy with another label is still a conflict.
    relabelled = dict(rows[6], ticket_id="T-relabelled", body=rows[6]["body"] + FOLLOW_UP)
    relabelled["output"] = dict(
        rows[6]["output"], category="account" if rows[6]["output"]["category"] != "account" else "billing"
    )
    result = build(make_project(tmp_path, {"t.jsonl": jsonl([*rows, shouted, other, relabelled])}))
    kinds = _by_kind(result)
    assert sorted(r["id"] for r in kinds["conflict"]) == ["T-6", "T-relabelled"]
    assert [r["id"] for r in kinds["duplicate"]] == ["T-shouted"]
    assert "T-other" in _kept_ids(result) and "T-4" in _kept_ids(result)
