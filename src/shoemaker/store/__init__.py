"""shoemaker's state: one SQLite file (see ``store.py``; schema and migrations in ``schema.py``)."""

from shoemaker.store.store import NewTask, RunRecord, Store, StoreBusy, StoreError

__all__ = ["NewTask", "RunRecord", "Store", "StoreBusy", "StoreError"]
