"""Registry: SQLite (WAL) records + a content-addressed object store. Never imports torch."""

from slmkit.registry.registry import (
    AuditEntry,
    DatasetRecord,
    EvalRecord,
    GoldLock,
    Registry,
    Release,
    RunRecord,
)
from slmkit.registry.store import ObjectStore, hash_dir, hash_file

__all__ = [
    "AuditEntry",
    "DatasetRecord",
    "EvalRecord",
    "GoldLock",
    "ObjectStore",
    "Registry",
    "Release",
    "RunRecord",
    "hash_dir",
    "hash_file",
]
