"""Retrieval: documents -> chunks -> an SQLite index (FTS5 + vectors) -> hybrid search within access groups.

`run_index_update(config)` builds or updates `.slmkit/index.db`; `Retriever(open_index(config))`
searches it for a caller's groups; `evaluate_retrieval` measures rankings on a qrels file.
Used by data (context in training rows), eval and serve.
"""

from slmkit.retrieval.chunking import Chunk, chunk_document
from slmkit.retrieval.documents import Document, document_files, read_document
from slmkit.retrieval.index import IndexResult, index_path, open_index, run_index_update
from slmkit.retrieval.metrics import RetrievalEval, evaluate_retrieval, read_qrels
from slmkit.retrieval.search import Hit, Retriever
from slmkit.retrieval.store import IndexStore

__all__ = [
    "Chunk",
    "Document",
    "Hit",
    "IndexResult",
    "IndexStore",
    "RetrievalEval",
    "Retriever",
    "chunk_document",
    "document_files",
    "evaluate_retrieval",
    "index_path",
    "open_index",
    "read_document",
    "read_qrels",
    "run_index_update",
]
