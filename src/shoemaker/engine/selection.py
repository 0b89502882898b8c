"""Partial execution: which tasks a run may start (``run --only``, ``--skip``, ``--from``)."""

from __future__ import annotations

from dataclasses import dataclass

from shoemaker.errors import GenerationError
from shoemaker.model import Task


@dataclass(frozen=True, slots=True)
class Selection:
    """Partial execution: which tasks a run may start. With a selection, a run stitches what
    is selected and ready and does not measure."""

    only: frozenset[int] = frozenset()
    """Only these tasks (empty: any)."""
    skip: frozenset[int] = frozenset()
    """Never these."""
    start: int | None = None
    """Only tasks with this id or a later one (``run --from``)."""

    def allows(self, task_id: int) -> bool:
        return (
            (not self.only or task_id in self.only)
            and task_id not in self.skip
            and (self.start is None or task_id >= self.start)
        )

    def check(self, tasks: list[Task]) -> None:
        """Refuse ids that are not tasks of the generation (nothing runs)."""
        known = {t.id for t in tasks}
        named = set(self.only) | set(self.skip) | ({self.start} if self.start else set())
        unknown = sorted(named - known)
        if unknown:
            ids = ", ".join(f"#{i}" for i in unknown)
            raise GenerationError(f"no task {ids} in this generation; see `shoemaker tasks`")
