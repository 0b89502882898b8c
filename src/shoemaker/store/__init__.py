"""shoemaker's state: one SQLite file. ``Store`` (``store.py``) is composed of one module per
table group over the connection in ``base.py``; schema and migrations are in ``schema.py``."""

from shoemaker.store.metrics import GateRecord, GenerationTotals, MetricsRecord
from shoemaker.store.runs import TaskUsage
from shoemaker.store.store import NewTask, RunRecord, Store, StoreBusy, StoreError, TaskMoved

__all__ = [
    "GateRecord",
    "GenerationTotals",
    "MetricsRecord",
    "NewTask",
    "RunRecord",
    "Store",
    "StoreBusy",
    "StoreError",
    "TaskMoved",
    "TaskUsage",
]
