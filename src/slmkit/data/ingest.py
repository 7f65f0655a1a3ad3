"""Read raw sources row by row, with provenance; a row that cannot be read becomes a reject.

Formats: JSONL, CSV, TSV, Parquet, and chat logs (JSONL lines holding a list of messages, turned
into examples by `slmkit.data.chat`; this module reads their lines like any JSONL).
Every reader streams: a line, a CSV record or a Parquet batch at a time, never the whole file.

A whole file that cannot be used (missing, empty, without the needed columns) is a DataError:
that is a mistake in the config or the export, not a bad row. Text files are read as bytes and
decoded line by line, so one bad byte rejects one row instead of failing the build; the
file's sha256 is taken from the same bytes the rows came from (a Parquet file is hashed as a
whole, since pyarrow reads it by pages).

`columns` (task input field -> column in this file) is applied here, so every record leaving
this module is keyed by the task's own field names.

Counting: `SourceStats.records` is what was read (non-blank lines, CSV records, Parquet rows);
`rows` is what came out of it, each a RawRow or a Reject. They differ only for chat logs with
`turns: all`, where one line gives one example per assistant turn. A chat line that cannot be
used is one reject, so `rows` = kept + rejected holds in examples.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmkit.config import ProjectConfig, SourceConfig
from slmkit.data.chat import ChatLineError, chat_examples, chat_line_id, check_chat_source
from slmkit.data.normalize import json_type
from slmkit.data.rows import Reject
from slmkit.errors import DataError

_BOM = b"\xef\xbb\xbf"
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
_PARQUET_BATCH_ROWS = 4096


@dataclass(frozen=True)
class RawRow:
    """One readable record and where it starts: `source` is "<path as in slmkit.yaml>:<line or row>".

    `history` holds the conversation before the input (chat logs only): user and assistant
    turns as {"role", "content"}, oldest first.
    """

    source: str
    record: dict[str, Any]
    history: tuple[dict[str, str], ...] = ()


@dataclass
class SourceStats:
    """What reading one source found; `sha256` is set once the file has been read to the end.

    `records` counts what was read (lines, CSV records, Parquet rows), `rows` the examples and
    rejects that came out of it: the number the build's accounting adds up.
    """

    path: str
    format: str = ""
    records: int = 0
    rows: int = 0
    blank_lines: int = 0
    sha256: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "records": self.records,
            "rows": self.rows,
            "blank_lines": self.blank_lines,
            "sha256": self.sha256,
        }


def source_format(source: SourceConfig) -> str:
    """jsonl, csv, tsv, parquet or chat: as configured, or from the file extension."""
    suffix = Path(source.path).suffix.lower()
    if source.format == "csv":
        return "tsv" if suffix == ".tsv" else "csv"
    if source.format != "auto":
        return source.format
    if suffix not in _EXTENSIONS:
        raise DataError(
            f"{source.path}: cannot tell the format from the extension '{suffix or '(none)'}'",
            hint="set `format: jsonl` (or csv, tsv, parquet, chat) for this source in slmkit.yaml",
        )
    return _EXTENSIONS[suffix]


def read_source(config: ProjectConfig, source: SourceConfig, stats: SourceStats) -> Iterator[RawRow | Reject]:
    """Records (or ingest rejects) of one source, in file order; blank lines are only counted."""
    path = config.resolve_path(source.path)
    if not path.is_file():
        raise DataError(
            f"{source.path}: file not found ({path})",
            hint="fix the path under data.sources in slmkit.yaml, or put the file there",
        )
    if path.stat().st_size == 0:
        raise DataError(
            f"{source.path}: the file is empty",
            hint="export the data again, or remove this source from data.sources",
        )
    stats.format = source_format(source)
    input_fields = config.task.input_fields
    _check_columns_setting(source, input_fields, stats.format)
    digest = hashlib.sha256()
    items: Iterator[RawRow | Reject]
    if stats.format == "jsonl":
        items = _read_jsonl(path, source, stats, digest)
    elif stats.format == "chat":
        items = _read_chat(path, source, input_fields[0], stats, digest)
    elif stats.format == "parquet":
        items = _read_parquet(path, source, config, stats, digest)
    else:
        items = _read_csv(path, source, input_fields, stats, digest)
    for item in items:
        stats.rows += 1
        yield item
    stats.sha256 = digest.hexdigest()
    if stats.rows == 0:
        what = {"jsonl": "only blank lines", "chat": "only blank lines", "parquet": "a schema and no rows"}
        raise DataError(
            f"{source.path}: no rows to read ({what.get(stats.format, 'a header row and nothing else')})",
            hint="export the data again, or remove this source from data.sources",
        )


def _check_columns_setting(source: SourceConfig, input_fields: list[str], fmt: str) -> None:
    unknown = [name for name in source.columns if name not in input_fields]
    if unknown:
        raise DataError(
            f"{source.path}: columns maps {', '.join(map(repr, unknown))}, which "
            f"{'is not a task input field' if len(unknown) == 1 else 'are not task input fields'} "
            f"(task.input_fields: {', '.join(input_fields)})",
            hint="the keys of data.sources[].columns are task input fields, the values the column names "
            "in this file, e.g. columns: {body: description}",
        )
    if fmt == "chat":
        check_chat_source(source, input_fields)


def _mapped(record: dict[str, Any], source: SourceConfig) -> dict[str, Any]:
    """The record with its columns renamed to task input fields (data.sources[].columns), and its
    answer assembled from data.sources[].output_columns when the file spreads it over columns."""
    columns = source.columns
    if not columns and not source.output_columns:
        return record
    out = {key: value for key, value in record.items() if key not in columns}
    out.update({field: record[column] for field, column in columns.items() if column in record})
    if source.output_columns:
        out[source.output_field] = {
            field: None if record.get(column) in ("", None) else record[column]
            for field, column in source.output_columns.items()
        }
    return out


def _required_columns(source: SourceConfig, input_fields: list[str]) -> list[tuple[str, str | None]]:
    """(column in the file, task input field it feeds or None for the output), in field order."""
    needed: list[tuple[str, str | None]] = [(source.columns.get(f, f), f) for f in input_fields]
    if source.output_columns:
        return [*needed, *((column, None) for column in source.output_columns.values())]
    return [*needed, (source.output_field, None)]


def _require_columns(source: SourceConfig, input_fields: list[str], present: list[str], what: str) -> None:
    needed = _required_columns(source, input_fields)
    missing = [(column, field) for column, field in needed if column not in present]
    if not missing:
        return
    named = [
        f"'{column}' (mapped to task input field '{field}' by columns)" if field and field != column else f"'{column}'"
        for column, field in missing
    ]
    raise DataError(
        f"{source.path}: no column{'s' if len(missing) > 1 else ''} {', '.join(named)} "
        f"(needed: {', '.join(column for column, _ in needed)}); {what} has: "
        f"{', '.join(map(repr, present)) or 'nothing'}",
        hint="rename the columns in the file, map them with data.sources[].columns ({task field: column}), "
        "or set task.input_fields / data.sources[].output_field in slmkit.yaml to the names the file uses",
    )


# --- JSONL and chat logs ------------------------------------------------------------------


def _lines(path: Path, digest: Any) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw bytes with the line end), hashing every byte on the way."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            digest.update(raw)
            yield number, raw.removeprefix(_BOM) if number == 1 else raw


def _json_objects(
    path: Path, source: SourceConfig, stats: SourceStats, digest: Any
) -> Iterator[tuple[str, int, dict[str, Any]] | Reject]:
    """(provenance, line number, object) per non-blank line, or the reject saying why it is not one."""
    for number, raw in _lines(path, digest):
        where = f"{source.path}:{number}"
        if not raw.strip():
            stats.blank_lines += 1
            continue
        stats.records += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            shown = raw.decode("utf-8", "replace").rstrip("\r\n")
            yield _ingest_reject(
                where,
                "encoding",
                f"line {number}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1}); "
                "re-export the file as UTF-8",
                shown,
                _salvage_id(shown, source.id_field),
            )
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.pos >= len(text.rstrip()):
                problem = "the line ends before its JSON object does (cut off?)"
            else:
                problem = f"not valid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})"
            yield _ingest_reject(
                where,
                "json",
                f"line {number}: {problem}; each line must be one complete JSON object",
                text.rstrip("\r\n"),
                _salvage_id(text, source.id_field),
            )
            continue
        if not isinstance(value, dict):
            yield _ingest_reject(
                where,
                "json",
                f"line {number}: a JSON {json_type(value)}, not an object with named fields (one per line)",
                value,
            )
            continue
        yield where, number, value


def _read_jsonl(path: Path, source: SourceConfig, stats: SourceStats, digest: Any) -> Iterator[RawRow | Reject]:
    for item in _json_objects(path, source, stats, digest):
        if isinstance(item, Reject):
            yield item
        else:
            where, _, value = item
            yield RawRow(where, _mapped(value, source))


def _read_chat(
    path: Path, source: SourceConfig, input_field: str, stats: SourceStats, digest: Any
) -> Iterator[RawRow | Reject]:
    """The examples of each chat line (see `slmkit.data.chat`), or one reject for a line that gives none."""
    for item in _json_objects(path, source, stats, digest):
        if isinstance(item, Reject):
            yield item
            continue
        where, number, value = item
        try:
            examples = chat_examples(value, source, input_field)
        except ChatLineError as exc:
            yield _ingest_reject(where, "chat", f"line {number}: {exc}", value, chat_line_id(value, source.id_field))
            continue
        for example in examples:
            yield RawRow(where + example.anchor, example.record, example.history)


# --- CSV / TSV ------------------------------------------------------------------------------


def _read_csv(
    path: Path, source: SourceConfig, input_fields: list[str], stats: SourceStats, digest: Any
) -> Iterator[RawRow | Reject]:
    bad_lines: set[int] = set()

    def decoded() -> Iterator[str]:
        # csv reads any iterable of lines; decoding each one alone keeps a bad byte local.
        for number, raw in _lines(path, digest):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                bad_lines.add(number)
                yield raw.decode("utf-8", "replace")

    delimiter = "\t" if stats.format == "tsv" else ","
    reader = csv.reader(decoded(), delimiter=delimiter)
    header = [cell.strip() for cell in next(reader, [])]
    _require_columns(source, input_fields, header, "the header row")
    id_column = header.index(source.id_field) if source.id_field in header else None
    end = reader.line_num
    try:
        for cells in reader:
            start, end = end + 1, reader.line_num
            where = f"{source.path}:{start}"
            if not any(cell.strip() for cell in cells):
                stats.blank_lines += 1
                continue
            stats.records += 1
            row_id = cells[id_column] if id_column is not None and id_column < len(cells) else None
            bad = sorted(n for n in bad_lines if start <= n <= end)
            if bad:
                yield _ingest_reject(
                    where,
                    "encoding",
                    f"line {bad[0]}: not valid UTF-8; re-export the file as UTF-8",
                    delimiter.join(cells),
                    row_id,
                )
            elif len(cells) != len(header):
                yield _ingest_reject(
                    where,
                    "columns",
                    f"line {start}: {len(cells)} cells, but the header has {len(header)}; quote cells "
                    f"that contain '{delimiter}', quotes or line breaks",
                    cells,
                    row_id,
                )
            else:
                yield RawRow(where, _mapped(dict(zip(header, cells, strict=True)), source))
    except csv.Error as exc:
        raise DataError(
            f"{source.path}: line {reader.line_num}: cannot read the {stats.format.upper()} ({exc})",
            hint="check the quoting near that line, or export the data as JSONL",
        ) from None


# --- Parquet --------------------------------------------------------------------------------


def _read_parquet(
    path: Path, source: SourceConfig, config: ProjectConfig, stats: SourceStats, digest: Any
) -> Iterator[RawRow | Reject]:
    """Rows in batches; only the columns the build uses are read (inputs, output, id, split.group_by, tags)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"{source.path}: not a readable Parquet file ({exc})",
            hint="export the file again, or set `format:` for this source if it is not Parquet",
        ) from None
    present = list(parquet.schema_arrow.names)
    input_fields = config.task.input_fields
    _require_columns(source, input_fields, present, "the file")
    wanted = [column for column, _ in _required_columns(source, input_fields)]
    wanted += [
        name for name in (source.id_field, config.data.split.group_by, source.tags_field) if name and name in present
    ]
    wanted = list(dict.fromkeys(wanted))
    number = 0
    try:
        for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=wanted):
            for cells in batch.to_pylist(maps_as_pydicts="lossy"):
                number += 1
                stats.records += 1
                where = f"{source.path}:{number}"
                record: dict[str, Any] = {}
                undecodable = None
                for name, cell in cells.items():
                    try:
                        record[name] = _plain(cell)
                    except UnicodeDecodeError:
                        undecodable = undecodable or name
                        record[name] = _plain(cell, errors="replace")
                row_id = record.get(source.id_field) if source.id_field else None
                shown_id = row_id if row_id is None or isinstance(row_id, str) else json.dumps(row_id)
                if undecodable:
                    yield _ingest_reject(
                        where,
                        "encoding",
                        f"row {number}: column '{undecodable}' holds bytes that are not UTF-8 text; "
                        "write it as a UTF-8 string column",
                        record,
                        shown_id,
                    )
                else:
                    yield RawRow(where, _mapped(record, source))
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"{source.path}: cannot read the Parquet file after row {number} ({exc})",
            hint="the file may be truncated or corrupt; export it again",
        ) from None


def _plain(value: Any, errors: str = "strict") -> Any:
    """A Parquet cell as JSON-able Python: dates as ISO text, decimals as numbers, UTF-8 bytes as text."""
    if isinstance(value, dict):
        return {str(k): _plain(v, errors) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, errors) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


# --- rejects --------------------------------------------------------------------------------


def _salvage_id(text: str, id_field: str | None) -> str | None:
    """The id of a row that does not parse, when its text still shows one: which ticket to fix."""
    if not id_field:
        return None
    found = re.search(rf'"{re.escape(id_field)}"\s*:\s*(?:"((?:[^"\\]|\\.)*)"|(-?\d+))', text)
    return (found.group(1) or found.group(2)) if found else None


def _ingest_reject(where: str, kind: str, reason: str, raw: Any, row_id: str | None = None) -> Reject:
    return Reject(source=where, id=row_id, kind=kind, reason=reason, stage="ingest", raw=raw)
