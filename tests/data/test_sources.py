"""Source readers: Parquet, column mapping, TSV and chat logs, read from real files the way the build reads them
(`read_source` then `check_record`), and chat history reaching the prompt the model is trained and served on."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from slmkit.config import ProjectConfig, load_config
from slmkit.data.dataset import Example, read_examples
from slmkit.data.ingest import SourceStats, read_source
from slmkit.data.rows import REJECT_KINDS, Reject, Row, write_jsonl
from slmkit.data.validate import check_record
from slmkit.errors import ConfigError, DataError
from slmkit.task import Task
from tests.conftest import write_project
from tests.data.factories import BASE_MODEL

ANSWER = {"category": "billing", "priority": "normal", "order_id": None, "product": None}
SHIPPING = {**ANSWER, "category": "shipping", "priority": "high"}


def _project(root: Path, files: dict[str, bytes], sources: list[dict[str, Any]], **overrides: Any) -> ProjectConfig:
    write_project(root, BASE_MODEL, rows=1, overrides={"data.sources": sources, **overrides})
    for name, content in files.items():
        (root / "data" / name).write_bytes(content)
    return load_config(root)


def _read(config: ProjectConfig, index: int = 0) -> tuple[list[Row], list[Reject], SourceStats]:
    """What the build gets from one source: checked rows, rejects (ingest or validate), and the counts."""
    task = Task.from_config(config)
    source = config.data.sources[index]
    stats = SourceStats(source.path)
    rows: list[Row] = []
    rejects: list[Reject] = []
    for item in read_source(config, source, stats):
        checked = item if isinstance(item, Reject) else check_record(task, item, source, config.data.max_input_chars)
        (rejects if isinstance(checked, Reject) else rows).append(checked)  # type: ignore[arg-type]
    return rows, rejects, stats


def _parquet(path: Path, columns: dict[str, list[Any]], row_group_size: int = 2, **types: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {name: pa.array(values, type=types.get(name)) for name, values in columns.items()}
    pq.write_table(pa.table(arrays), path, row_group_size=row_group_size)
    return path.read_bytes()


# --- Parquet ----------------------------------------------------------------------------------


def test_parquet_rows_with_mapped_columns_keep_row_provenance_and_file_hash(tmp_path):
    import datetime as dt

    data = _parquet(
        tmp_path / "export.parquet",
        {
            "ticket_id": ["T-1", "T-2", "T-3", "T-4", "T-5"],
            "title": ["Refund", "Late parcel", "Hi", "Charged twice", "Numbers"],
            "description": ["I was charged twice", "Where is my parcel?", None, "Again charged", "x"],
            "answer": [ANSWER, SHIPPING, ANSWER, ANSWER, ANSWER],  # a struct column
            "created_at": [dt.datetime(2026, 1, n) for n in range(1, 6)],  # not read: no task field uses it
        },
    )
    # Row 5's answer is JSON text in a second file, the form many exports use.
    text_answers = _parquet(
        tmp_path / "text.parquet",
        {"title": ["Parcel"], "description": ["Lost parcel"], "answer": [json.dumps(SHIPPING)]},
    )
    config = _project(
        tmp_path / "p",
        {"export.parquet": data, "text.parquet": text_answers},
        [
            {
                "path": "data/export.parquet",
                "id_field": "ticket_id",
                "output_field": "answer",
                "columns": {"subject": "title", "body": "description"},
            },
            {
                "path": "data/text.parquet",
                "format": "parquet",
                "output_field": "answer",
                "columns": {"body": "description", "subject": "title"},
            },
        ],
    )
    rows, rejects, stats = _read(config)
    assert not rejects
    by_id = {row.example.id: row.example for row in rows}
    assert by_id["T-2"].source == "data/export.parquet:2"
    assert by_id["T-5"].source == "data/export.parquet:5"  # numbered on across row groups
    assert by_id["T-2"].fields == {"subject": "Late parcel", "body": "Where is my parcel?"}
    assert by_id["T-2"].input == "Subject: Late parcel\n\nWhere is my parcel?"
    assert by_id["T-2"].output == SHIPPING
    assert by_id["T-3"].fields["body"] == ""  # a null cell reads as empty text
    assert (stats.format, stats.records, stats.rows) == ("parquet", 5, 5)
    assert stats.sha256 == hashlib.sha256(data).hexdigest()

    rows, rejects, _ = _read(config, 1)
    assert [(r.example.source, r.example.output) for r in rows] == [("data/text.parquet:1", SHIPPING)]


def test_parquet_non_text_and_non_utf8_cells_are_rejects_naming_the_row(tmp_path):
    import pyarrow as pa

    data = _parquet(
        tmp_path / "t.parquet",
        {
            "subject": ["a", "b", "c"],
            "body": [b"fine text", b"caf\xe9 \xff", b"more text"],  # binary, as some writers store strings
            "priority_score": [1, 2, 3],
            "output": [json.dumps(ANSWER)] * 3,
        },
        body=pa.binary(),
    )
    numbers = _parquet(tmp_path / "n.parquet", {"subject": ["a"], "body": [12345], "output": [json.dumps(ANSWER)]})
    config = _project(
        tmp_path / "p",
        {"t.parquet": data, "n.parquet": numbers},
        [{"path": "data/t.parquet"}, {"path": "data/n.parquet"}],
    )
    rows, rejects, stats = _read(config)
    assert [r.example.fields["body"] for r in rows] == ["fine text", "more text"]  # UTF-8 bytes read as text
    (bad,) = rejects
    assert (bad.source, bad.kind, bad.stage) == ("data/t.parquet:2", "encoding", "ingest")
    assert "row 2" in bad.reason and "'body'" in bad.reason and "UTF-8" in bad.reason
    assert stats.rows == 3
    _, rejects, _ = _read(config, 1)
    assert [(r.kind, r.source) for r in rejects] == [("field_type", "data/n.parquet:1")]
    assert "'body' is a number" in rejects[0].reason


def test_parquet_missing_a_mapped_column_names_the_column_and_the_task_field(tmp_path):
    data = _parquet(tmp_path / "t.parquet", {"title": ["a"], "text": ["b"], "output": [json.dumps(ANSWER)]})
    config = _project(
        tmp_path / "p",
        {"t.parquet": data},
        [{"path": "data/t.parquet", "columns": {"subject": "title", "body": "description"}}],
    )
    with pytest.raises(DataError) as err:
        _read(config)
    message = str(err.value)
    assert "data/t.parquet" in message
    assert "'description' (mapped to task input field 'body'" in message
    assert "'title', 'text', 'output'" in message  # what the file has instead
    assert "columns" in message  # and how to fix it


def test_a_file_that_is_not_parquet_is_a_data_error(tmp_path):
    config = _project(tmp_path / "p", {"t.parquet": b"ticket_id,subject\nT-1,hi\n"}, [{"path": "data/t.parquet"}])
    with pytest.raises(DataError, match=r"data/t\.parquet: not a readable Parquet file"):
        _read(config)


# --- column mapping in CSV, TSV and JSONL ------------------------------------------------------------


def test_csv_and_tsv_columns_map_to_task_fields(tmp_path):
    out = json.dumps(ANSWER).replace('"', '""')
    csv_text = f'id,title,description,output\nT-1,Refund,"Charged, twice","{out}"\n'
    tsv_text = "title\tdescription\toutput\nLate\tWhere is it?\t" + json.dumps(SHIPPING) + "\n"
    config = _project(
        tmp_path / "p",
        {"t.csv": csv_text.encode(), "t.tab": tsv_text.encode()},
        [
            {"path": "data/t.csv", "id_field": "id", "columns": {"subject": "title", "body": "description"}},
            {"path": "data/t.tab", "format": "tsv", "columns": {"subject": "title", "body": "description"}},
        ],
    )
    rows, rejects, _ = _read(config)
    assert not rejects
    assert rows[0].example.fields == {"subject": "Refund", "body": "Charged, twice"}
    assert (rows[0].example.id, rows[0].example.source) == ("T-1", "data/t.csv:2")
    rows, rejects, stats = _read(config, 1)
    assert stats.format == "tsv" and not rejects
    assert rows[0].example.input == "Subject: Late\n\nWhere is it?" and rows[0].example.output == SHIPPING


def test_csv_missing_a_mapped_column_names_both(tmp_path):
    config = _project(
        tmp_path / "p",
        {"t.csv": b"subject,text,output\na,b,{}\n"},
        [{"path": "data/t.csv", "columns": {"body": "description"}}],
    )
    with pytest.raises(DataError, match=r"'description' \(mapped to task input field 'body'"):
        _read(config)


def test_jsonl_row_without_the_mapped_column_is_a_reject_naming_both(tmp_path):
    lines = [
        {"subject": "a", "description": "first", "output": ANSWER},
        {"subject": "b", "body": "not the mapped column", "output": ANSWER},
    ]
    config = _project(
        tmp_path / "p",
        {"t.jsonl": "".join(json.dumps(line) + "\n" for line in lines).encode()},
        [{"path": "data/t.jsonl", "columns": {"body": "description"}}],
    )
    rows, rejects, _ = _read(config)
    assert rows[0].example.fields["body"] == "first"
    assert [(r.source, r.kind) for r in rejects] == [("data/t.jsonl:2", "missing_field")]
    assert "column 'description'" in rejects[0].reason and "input field 'body'" in rejects[0].reason


# --- chat logs --------------------------------------------------------------------------------------


def _chat(*turns: tuple[str, Any], **extra: Any) -> dict[str, Any]:
    messages = [{"role": role, "content": c if isinstance(c, str) else json.dumps(c)} for role, c in turns]
    return {**extra, "messages": messages}


CHAT_TASK = {"task.input_fields": ["message"], "task.input_template": None}


def _chat_project(root: Path, lines: list[Any], turns: str = "last") -> ProjectConfig:
    body = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    source = {"path": "data/chat.jsonl", "format": "chat", "id_field": "conversation", "chat": {"turns": turns}}
    return _project(root, {"chat.jsonl": body.encode()}, [source], **CHAT_TASK)


CONVERSATION = _chat(
    ("system", "You are a helpful agent."),
    ("user", "Hi, I was charged twice for order ORD-123456."),
    ("assistant", {"product": None, "category": "billing", "order_id": "ORD-123456", "priority": "normal"}),
    ("user", "Also, the parcel has not arrived."),
    ("assistant", SHIPPING),
    conversation="C-1",
)


def test_chat_turns_last_gives_one_example_with_its_history(tmp_path):
    config = _chat_project(tmp_path / "p", [CONVERSATION])
    rows, rejects, stats = _read(config)
    assert not rejects
    (example,) = [r.example for r in rows]
    assert (example.id, example.source) == ("C-1", "data/chat.jsonl:1")
    assert example.input == "Also, the parcel has not arrived." and example.output == SHIPPING
    # The log's own system message is dropped (the task's is used); the earlier answer is in the
    # task's exact output format, as the model writes it.
    assert example.history == (
        {"role": "user", "content": "Hi, I was charged twice for order ORD-123456."},
        {
            "role": "assistant",
            "content": '{"category": "billing", "priority": "normal", "order_id": "ORD-123456", "product": null}',
        },
    )
    assert (stats.records, stats.rows) == (1, 1)


def test_chat_turns_all_gives_an_example_per_answer_and_counts_examples(tmp_path):
    second = _chat(("user", "Where is my parcel?"), ("assistant", SHIPPING), conversation=7, customer="K-9")
    broken = _chat(("user", "hello"), ("user", "anyone?"), conversation="C-3")  # no answer at all
    not_json = _chat(("user", "a"), ("assistant", "Sure, let me check."), ("user", "b"), ("assistant", ANSWER))
    config = _chat_project(tmp_path / "p", [CONVERSATION, "", second, broken, not_json], turns="all")
    rows, rejects, stats = _read(config)
    examples = {r.example.source: r.example for r in rows}
    assert set(examples) == {
        "data/chat.jsonl:1#turn1",
        "data/chat.jsonl:1#turn2",
        "data/chat.jsonl:3#turn1",
        "data/chat.jsonl:5#turn2",
    }
    assert examples["data/chat.jsonl:1#turn1"].history == ()
    assert examples["data/chat.jsonl:1#turn1"].id == "C-1#turn1"
    assert examples["data/chat.jsonl:3#turn1"].id == "7#turn1"
    raw = next(
        item for item in read_source(config, config.data.sources[0], SourceStats("")) if "customer" in item.record
    )
    assert raw.record["customer"] == "K-9"  # the line's own fields stay, for split.group_by
    assert [t["role"] for t in examples["data/chat.jsonl:1#turn2"].history] == ["user", "assistant"]
    # The prose answer of turn 1 on line 5 is that example's reject, and turn 2 still learns from it as history.
    assert examples["data/chat.jsonl:5#turn2"].history[1] == {"role": "assistant", "content": "Sure, let me check."}
    assert sorted((r.source, r.kind) for r in rejects) == [
        ("data/chat.jsonl:4", "chat"),
        ("data/chat.jsonl:5#turn1", "output_json"),
    ]
    # Accounting is in examples: 4 lines read (1 blank), 6 examples out = 4 kept + 2 rejected.
    assert (stats.records, stats.blank_lines, stats.rows) == (4, 1, 6)
    assert stats.rows == len(rows) + len(rejects)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ({"conversation": "x", "turns": []}, "no 'messages' field"),
        ({"messages": {"role": "user"}}, "'messages' is a JSON object, not a list of messages"),
        ({"messages": [{"content": "hi"}, {"role": "assistant", "content": "{}"}]}, "message 1 has no role"),
        ({"messages": [{"role": "user"}, {"role": "assistant", "content": "{}"}]}, "message 1 (user) has no content"),
        ({"messages": ["hi"]}, "message 1 is a JSON string, not an object"),
        (_chat(("user", "a"), ("tool", "b"), ("assistant", ANSWER)), "message 2 has role 'tool'"),
        (_chat(("system", "s"), ("user", "hello")), "no assistant message"),
        (_chat(("user", "a"), ("assistant", ANSWER), ("assistant", ANSWER)), "message 3 (assistant) follows message 2"),
        (_chat(("system", "s"), ("assistant", ANSWER)), "message 2 (assistant) starts the conversation"),
    ],
    ids=[
        "no-messages",
        "not-a-list",
        "no-role",
        "no-content",
        "not-an-object",
        "tool",
        "no-answer",
        "two-answers",
        "first",
    ],
)
def test_chat_lines_that_cannot_be_read_are_one_reject_each(tmp_path, line, words):
    config = _chat_project(tmp_path / "p", [_chat(("user", "fine"), ("assistant", ANSWER)), line])
    rows, rejects, stats = _read(config)
    assert len(rows) == 1
    (reject,) = rejects
    assert (reject.source, reject.kind, reject.stage) == ("data/chat.jsonl:2", "chat", "ingest")
    assert reject.reason.startswith("line 2: ") and words in reject.reason, reject.reason
    assert reject.kind in REJECT_KINDS
    assert stats.rows == 2


def test_chat_content_parts_are_read_as_text(tmp_path):
    parts = [
        {"type": "text", "text": "My parcel "},
        {"type": "image_url", "image_url": {}},
        {"type": "text", "text": "is late"},
    ]
    line = {"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": json.dumps(SHIPPING)}]}
    rows, rejects, _ = _read(_chat_project(tmp_path / "p", [line]))
    assert not rejects and rows[0].example.input == "My parcel is late"


def test_chat_needs_a_task_with_one_input_field(tmp_path):
    body = json.dumps(CONVERSATION).encode() + b"\n"
    with pytest.raises(ConfigError) as err:  # the example task has two input fields: subject and body
        _project(tmp_path / "p", {"chat.jsonl": body}, [{"path": "data/chat.jsonl", "format": "chat"}])
    assert "data.sources[0].format: chat logs fill one input field" in str(err.value)


# --- history: stored, read back, rendered ----------------------------------------------------------


def test_history_is_stored_only_when_present_and_read_back(tmp_path):
    turn = ({"role": "user", "content": "hi"}, {"role": "assistant", "content": "{}"})
    plain = Example("a", "f:1", "text", {"message": "text"}, ANSWER, "billing")
    chat = Example("b", "f:2", "more", {"message": "more"}, ANSWER, "billing", turn)
    assert "history" not in plain.as_dict() and chat.as_dict()["history"] == list(turn)
    write_jsonl(tmp_path / "train.jsonl", [plain.as_dict(), chat.as_dict()])
    assert read_examples(tmp_path / "train.jsonl") == [plain, chat]
    # The same last message in two conversations is two questions; without history nothing changes.
    assert plain.dedup_text == "text" and chat.dedup_text != chat.input


@pytest.fixture(scope="module")
def chat_task(tmp_path_factory) -> Task:
    root = tmp_path_factory.mktemp("chat-task")
    config = _chat_project(root, [CONVERSATION])
    return Task.from_config(config)


def test_history_sits_between_the_system_prompt_and_the_input_in_training_and_serving(chat_task, smollm2_ref):
    from slmkit.models import load_tokenizer
    from slmkit.models.generate import common_prefix
    from slmkit.serve.protocol import ChatMessage
    from slmkit.serve.service import earlier_turns
    from slmkit.train.batches import IGNORE, encode_example

    tokenizer = load_tokenizer(smollm2_ref)
    earlier_answer = json.dumps({**ANSWER, "order_id": "ORD-654321"})
    history = [{"role": "user", "content": "Charged twice?"}, {"role": "assistant", "content": earlier_answer}]
    prompt, completion = chat_task.training_texts(tokenizer, "And the parcel?", SHIPPING, history)
    system = chat_task.system_message()
    assert (
        prompt.index(system)
        < prompt.index("Charged twice?")
        < prompt.index("ORD-654321")
        < prompt.index("And the parcel?")
    )
    assert completion.startswith(chat_task.format_output(SHIPPING))
    assert "Charged twice?" not in completion  # the loss never lands on earlier turns

    # Every prompt still starts with the same system prompt, so its cache is shared with or without history.
    plain = tokenizer(chat_task.prompt_text(tokenizer, "Hello"), add_special_tokens=False)["input_ids"]
    with_history = tokenizer(chat_task.prompt_text(tokenizer, "Hello", history), add_special_tokens=False)["input_ids"]
    system_only = tokenizer(
        tokenizer.apply_chat_template([{"role": "system", "content": system}], tokenize=False), add_special_tokens=False
    )["input_ids"]
    assert len(common_prefix([plain, with_history])) >= len(system_only)

    # Too long: the oldest turns go first, the input and the answer stay whole.
    short = encode_example(chat_task, tokenizer, "And the parcel?", SHIPPING, 10_000)
    long_history = [{"role": "user", "content": "old " * 300}, {"role": "assistant", "content": "{}"}, *history]
    cut = encode_example(chat_task, tokenizer, "And the parcel?", SHIPPING, len(short.input_ids) + 40, long_history)
    assert cut.truncated
    text = tokenizer.decode(cut.input_ids)
    assert "old old" not in text and "And the parcel?" in text
    assert [t for t in cut.labels if t != IGNORE] == [t for t in short.labels if t != IGNORE]

    # The server passes the turns before the last user message the same way (system and tool messages left out).
    messages = [
        ChatMessage(role="system", content="be brief"),
        ChatMessage(role="user", content=" Charged twice? "),
        ChatMessage(role="assistant", content=earlier_answer),
        ChatMessage(role="tool", content="lookup"),
        ChatMessage(role="user", content="And the parcel?"),
    ]
    assert list(earlier_turns(messages)) == history
    assert earlier_turns(messages[-1:]) == ()
