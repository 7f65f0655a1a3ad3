"""The build's working store: valid rows on disk, a few numbers per row in memory.

A data build reads its sources once. Each valid row is written as one JSON line to a spool
file in the build's temp directory, and only what the later stages decide on stays in
memory: the row's place in the spool, its dedup key, a hash of its answer, its label and
group, its lengths, and its MinHash signature. That keeps a build of a million rows inside a
fixed, small memory budget; the rows themselves are read back from the spool when they are
written to their split, or when a reject has to show what the row said.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np


class Spool:
    """Append-only JSONL with the byte offset of every line, readable by row number."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[bytes] = path.open("w+b")
        self._offsets = array("q")
        self._end = 0

    def __len__(self) -> int:
        return len(self._offsets)

    def append(self, line: bytes) -> int:
        """Store one JSON line (without its newline); returns its row number."""
        self._offsets.append(self._end)
        self._fh.seek(self._end)
        self._fh.write(line + b"\n")
        self._end += len(line) + 1
        return len(self._offsets) - 1

    def line(self, index: int) -> bytes:
        """The stored bytes of row `index`, without the newline."""
        self._fh.seek(self._offsets[index])
        return self._fh.readline().rstrip(b"\n")

    def get(self, index: int) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.line(index))
        return value

    def lines(self) -> Iterator[bytes]:
        """Every stored line in row order, without newlines, read sequentially."""
        self._fh.flush()
        with self.path.open("rb") as fh:
            for raw in fh:
                yield raw.rstrip(b"\n")

    def close(self) -> None:
        self._fh.close()


class Column:
    """A growable column of one numeric type (an `array`), handed to numpy when reading is over."""

    def __init__(self, typecode: str) -> None:
        self._data = array(typecode)

    def append(self, value: int) -> None:
        self._data.append(value)

    def numpy(self) -> np.ndarray:
        return np.array(self._data, dtype=np.dtype(self._data.typecode))

    def __len__(self) -> int:
        return len(self._data)
