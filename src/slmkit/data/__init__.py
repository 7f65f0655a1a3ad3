"""Data: ingest, normalize, validate, dedupe, split and lock the gold set -> a dataset version.

`run_data_build(config)` writes and registers a version; `open_dataset(config, registry)` reads
one back for train and eval, refusing a gold set that is not the locked one.
"""

from slmkit.data.build import run_data_build
from slmkit.data.dataset import Dataset, Example, open_dataset, verify_gold_file
from slmkit.data.report import DataBuildResult
from slmkit.data.rows import REJECT_KINDS

__all__ = [
    "REJECT_KINDS",
    "DataBuildResult",
    "Dataset",
    "Example",
    "open_dataset",
    "run_data_build",
    "verify_gold_file",
]
