"""The store: one SQLite file (WAL) that is the source of truth for generations, tasks and runs.

Every state change is one transaction that also appends the event announcing it, so the log and
the tables never disagree; once it commits, its events go to ``on_commit`` (the project's bus).
Calls are blocking and thread-safe (one connection behind a lock); async code calls them
through ``asyncio.to_thread`` where they may take a while.
"""

from __future__ import annotations

from shoemaker.store.base import StoreBusy, StoreError
from shoemaker.store.generations import GenerationStore
from shoemaker.store.metrics import MetricStore
from shoemaker.store.plans import PlanStore
from shoemaker.store.retries import RetryStore
from shoemaker.store.runs import RunRecord, RunStore
from shoemaker.store.tasks import NewTask, TaskMoved


class Store(GenerationStore, RetryStore, PlanStore, RunStore, MetricStore):
    """All reads and writes of shoemaker's state: one object, one connection, composed of one
    part per table group (``store/generations.py``, ``tasks.py`` with ``retries.py``,
    ``plans.py``, ``runs.py``, ``metrics.py``; events in ``events.py``, the connection in
    ``base.py``)."""


__all__ = ["NewTask", "RunRecord", "Store", "StoreBusy", "StoreError", "TaskMoved"]
