"""Batch scoring of call archives: resumable JSONL output, local processes or Dask.

Library modules never print or exit; :mod:`detector.batch.cli` does.
"""
from detector.batch.records import BatchRecord
from detector.batch.resume import ResultStore, read_output
from detector.batch.runner import BatchAbortedError, BatchStats, LocalBackend, run_batch

__all__ = ["BatchAbortedError", "BatchRecord", "BatchStats", "LocalBackend", "ResultStore", "read_output",
           "run_batch"]
