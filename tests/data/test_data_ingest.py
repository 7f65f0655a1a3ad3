"""Reading sources: bad rows become rejects naming their line; unusable files stop the build."""

from __future__ import annotations

import pytest

from slmkit.errors import DataError
from tests.conftest import read_jsonl
from tests.data.factories import build, jsonl, make_project, ticket

HEADER = "ticket_id,subject,body,output\n"


def _csv_row(n: int, body: str | None = None) -> str:
    out = '"{""category"": ""billing"", ""priority"": ""low"", ""order_id"": null, ""product"": null}"'
    return f'T-{n},Subject {n},"{body or f"Body of ticket {n}"}",{out}\n'


def _rejects(result) -> dict[str, dict]:
    return {r["source"]: r for r in read_jsonl(result.path / "rejects.jsonl")}


def test_a_non_utf8_line_is_a_reject_naming_its_line_not_a_crash(tmp_path):
    data = jsonl([ticket(1), ticket(2), ticket(3)]).replace(b"Question number 2", b"Caf\xe9 \xff number 2")
    root = make_project(tmp_path / "p", {"t.jsonl": data + jsonl([ticket(n) for n in range(4, 12)])})
    result = build(root)
    reject = _rejects(result)["data/t.jsonl:2"]
    assert reject["kind"] == "encoding" and reject["stage"] == "ingest"
    assert "line 2" in reject["reason"] and "UTF-8" in reject["reason"]
    assert "Caf\ufffd" in reject["raw"]  # shown with replacement characters, still readable
    assert result.counts["input"] == 11 and result.counts["kept"] == 10


def test_the_same_in_csv_rejects_the_record_not_the_file(tmp_path):
    body = "".join(_csv_row(n) for n in range(1, 12)).encode()
    data = HEADER.encode() + body.replace(b"Body of ticket 3", b"Body \xff of ticket 3")
    result = build(make_project(tmp_path / "p", {"t.csv": data}))
    reject = _rejects(result)["data/t.csv:4"]
    assert reject["kind"] == "encoding" and "line 4" in reject["reason"]
    assert result.counts["kept"] == 10


def test_malformed_lines_each_get_a_reason(tmp_path):
    rows = [
        ticket(1),
        "[1, 2]",
        "2026-05-02 14:11:09 WARN exporter retried",
        '{"ticket_id": "T-9", "subject": "cut',
        {**ticket(5), "body": 12345},
        {k: v for k, v in ticket(6).items() if k != "body"},
        {k: v for k, v in ticket(7).items() if k != "output"},
        {**ticket(8), "output": '{"category": "billing", '},
        {**ticket(9), "output": "[1, 2]"},
        ticket(10, category="refund"),
        {**ticket(11), "subject": "", "body": "  \n "},
        {**ticket(12), "body": "x" * 9000},
        *[ticket(n, category="billing") for n in range(13, 20)],
    ]
    result = build(make_project(tmp_path / "p", {"t.jsonl": jsonl(rows)}))
    rejects = _rejects(result)
    expected = {
        2: ("json", "a JSON array"),
        3: ("json", "not valid JSON"),
        4: ("json", "line 4: the line ends before its JSON object does"),
        5: ("field_type", "input field 'body' is a number"),
        6: ("missing_field", "missing input field 'body'"),
        7: ("missing_field", "missing output field 'output'"),
        8: ("output_json", "not valid JSON text"),
        9: ("output_json", "not an object"),
        10: ("schema", "output.category: 'refund' is not one of"),
        11: ("empty", "the input is empty"),
        12: ("too_long", "over data.max_input_chars=8000"),
    }
    for line, (kind, words) in expected.items():
        reject = rejects[f"data/t.jsonl:{line}"]
        assert (reject["kind"], words in reject["reason"]) == (kind, True), reject
    assert rejects["data/t.jsonl:5"]["id"] == "T-5"  # the id is kept as provenance
    assert rejects["data/t.jsonl:4"]["id"] == "T-9"  # even from a line cut off after it
    assert result.counts["input"] == 19 and result.counts["kept"] == 8


def test_blank_lines_are_counted_not_rejected(tmp_path):
    data = jsonl([ticket(n) for n in range(1, 6)]) + b"\n   \n\r\n" + jsonl([ticket(n) for n in range(6, 11)])
    result = build(make_project(tmp_path / "p", {"t.jsonl": data}))
    assert result.counts["blank_lines"] == 3
    assert result.counts["input"] == 10 and result.counts["rejected"] == 0
    rows = read_jsonl(result.path / "train.jsonl") + read_jsonl(result.path / "gold.jsonl")
    assert "data/t.jsonl:9" in {r["source"] for r in rows}  # line numbers count the blank lines


def test_csv_records_spanning_lines_keep_their_first_line(tmp_path):
    rows = [_csv_row(1, "first line\nsecond line"), _csv_row(2), "T-3,only,three\n", _csv_row(4, "a,b\n\nc")]
    rows += [_csv_row(n) for n in range(5, 12)]
    result = build(make_project(tmp_path / "p", {"t.csv": ("\ufeff" + HEADER + "".join(rows)).encode()}))
    rejects = _rejects(result)
    assert rejects["data/t.csv:5"]["kind"] == "columns"
    assert "3 cells, but the header has 4" in rejects["data/t.csv:5"]["reason"]
    assert rejects["data/t.csv:5"]["id"] == "T-3"
    kept = {r["id"]: r for s in ("train", "validation", "gold") for r in read_jsonl(result.path / f"{s}.jsonl")}
    assert kept["T-1"]["source"] == "data/t.csv:2"
    assert kept["T-1"]["fields"]["body"] == "first line\nsecond line"
    assert kept["T-2"]["source"] == "data/t.csv:4"
    assert kept["T-4"]["source"] == "data/t.csv:6"
    assert kept["T-4"]["fields"]["body"] == "a,b\n\nc"
    assert kept["T-5"]["source"] == "data/t.csv:9"


def test_csv_without_the_output_column_names_file_and_columns(tmp_path):
    data = "ticket_id,subject,body,answer\n" + "T-1,hi,there,{}\n"
    root = make_project(tmp_path / "p", {"t.csv": data.encode()})
    with pytest.raises(DataError) as err:
        build(root)
    message = str(err.value)
    assert "data/t.csv" in message
    assert "'output'" in message
    assert "'ticket_id', 'subject', 'body', 'answer'" in message
    assert "output_field" in message  # and how to fix it


@pytest.mark.parametrize(
    ("content", "words"), [(b"", "the file is empty"), (b"\n\n  \n", "only blank lines")], ids=["empty", "blank"]
)
def test_an_empty_file_is_a_data_error(tmp_path, content, words):
    root = make_project(tmp_path / "p", {"good.jsonl": jsonl([ticket(n) for n in range(9)]), "t.jsonl": content})
    with pytest.raises(DataError, match=words) as err:
        build(root)
    assert "data/t.jsonl" in str(err.value)
    assert not list((root / ".slmkit").glob("data-build-*"))  # the half-built dataset is cleaned up


def test_header_only_csv_and_missing_file_are_data_errors(tmp_path):
    root = make_project(tmp_path / "p", {"t.csv": HEADER.encode()})
    with pytest.raises(DataError, match=r"data/t\.csv: no rows to read \(a header row"):
        build(root)
    (root / "data" / "t.csv").unlink()
    from slmkit.config import load_config
    from slmkit.data import run_data_build

    config = load_config(root, check_files=False)
    with pytest.raises(DataError, match=r"data/t\.csv: file not found"):
        run_data_build(config)


def test_unknown_extension_asks_for_a_format(tmp_path):
    root = make_project(tmp_path / "p", {"t.txt": jsonl([ticket(n) for n in range(9)])})
    with pytest.raises(DataError, match="format: jsonl"):
        build(root)
