"""Read raw sources row by row, with provenance; a row that cannot be read becomes a reject.

A whole file that cannot be used (missing, empty, without the needed columns) is a DataError:
that is a mistake in the config or the export, not a bad row. Files are read as bytes and
decoded line by line, so one bad byte rejects one row instead of failing the build; the
file's sha256 is taken from the same bytes the rows came from.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmkit.config import ProjectConfig, SourceConfig
from slmkit.data.normalize import json_type
from slmkit.data.rows import Reject
from slmkit.errors import DataError

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class RawRow:
    """One readable record and where it starts: `source` is "<path as in slmkit.yaml>:<line>"."""

    source: str
    record: dict[str, Any]


@dataclass
class SourceStats:
    """What reading one source found; `sha256` is set once the file has been read to the end."""

    path: str
    format: str = ""
    rows: int = 0
    blank_lines: int = 0
    sha256: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "rows": self.rows,
            "blank_lines": self.blank_lines,
            "sha256": self.sha256,
        }


def source_format(source: SourceConfig) -> str:
    """jsonl, csv or tsv: as configured, or from the file extension."""
    suffix = Path(source.path).suffix.lower()
    if source.format == "csv":
        return "tsv" if suffix == ".tsv" else "csv"
    if source.format != "auto":
        return source.format
    formats = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv"}
    if suffix not in formats:
        raise DataError(
            f"{source.path}: cannot tell the format from the extension '{suffix or '(none)'}'",
            hint="set `format: jsonl` or `format: csv` for this source in slmkit.yaml",
        )
    return formats[suffix]


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
    digest = hashlib.sha256()
    if stats.format == "jsonl":
        yield from _read_jsonl(path, source, stats, digest)
    else:
        yield from _read_csv(path, source, config.task.input_fields, stats, digest)
    stats.sha256 = digest.hexdigest()
    if stats.rows == 0:
        what = "a header row and nothing else" if stats.format != "jsonl" else "only blank lines"
        raise DataError(
            f"{source.path}: no rows to read ({what})",
            hint="export the data again, or remove this source from data.sources",
        )


def _lines(path: Path, digest: Any) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw bytes with the line end), hashing every byte on the way."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            digest.update(raw)
            yield number, raw.removeprefix(_BOM) if number == 1 else raw


def _read_jsonl(path: Path, source: SourceConfig, stats: SourceStats, digest: Any) -> Iterator[RawRow | Reject]:
    for number, raw in _lines(path, digest):
        where = f"{source.path}:{number}"
        if not raw.strip():
            stats.blank_lines += 1
            continue
        stats.rows += 1
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
        yield RawRow(where, value)


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
    needed = [*input_fields, source.output_field]
    missing = [name for name in needed if name not in header]
    if missing:
        raise DataError(
            f"{source.path}: no column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
            f"(needed: {', '.join(needed)}); the header row has: {', '.join(map(repr, header)) or 'nothing'}",
            hint="rename the columns in the file, or set task.input_fields / data.sources[].output_field "
            "in slmkit.yaml to the names the file uses",
        )
    id_column = header.index(source.id_field) if source.id_field in header else None
    end = reader.line_num
    try:
        for cells in reader:
            start, end = end + 1, reader.line_num
            where = f"{source.path}:{start}"
            if not any(cell.strip() for cell in cells):
                stats.blank_lines += 1
                continue
            stats.rows += 1
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
                yield RawRow(where, dict(zip(header, cells, strict=True)))
    except csv.Error as exc:
        raise DataError(
            f"{source.path}: line {reader.line_num}: cannot read the CSV ({exc})",
            hint="check the quoting near that line, or export the data as JSONL",
        ) from None


def _salvage_id(text: str, id_field: str | None) -> str | None:
    """The id of a row that does not parse, when its text still shows one: which ticket to fix."""
    if not id_field:
        return None
    found = re.search(rf'"{re.escape(id_field)}"\s*:\s*(?:"((?:[^"\\]|\\.)*)"|(-?\d+))', text)
    return (found.group(1) or found.group(2)) if found else None


def _ingest_reject(where: str, kind: str, reason: str, raw: Any, row_id: str | None = None) -> Reject:
    return Reject(source=where, id=row_id, kind=kind, reason=reason, stage="ingest", raw=raw)
