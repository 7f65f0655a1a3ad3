"""Registry: SQLite (WAL) records + a content-addressed object store. Never imports torch.

`Registry(home)` is the entry point; `ObjectStore`, `hash_file` and `hash_dir` are the store
on their own (the data stage hashes sources with them).
"""

from __future__ import annotations

from slmkit.registry.db import connect
from slmkit.registry.records import (
    AuditEntry,
    DatasetRecord,
    EvalRecord,
    Evidence,
    ExportRecord,
    GoldLock,
    NewEvidence,
    Release,
    ReviewVerdict,
    RunRecord,
)
from slmkit.registry.registry import Registry
from slmkit.registry.store import ObjectStore, hash_dir, hash_file

__all__ = [
    "AuditEntry",
    "DatasetRecord",
    "EvalRecord",
    "Evidence",
    "ExportRecord",
    "GoldLock",
    "NewEvidence",
    "ObjectStore",
    "Registry",
    "Release",
    "ReviewVerdict",
    "RunRecord",
    "connect",
    "hash_dir",
    "hash_file",
]
