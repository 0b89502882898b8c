"""Plans and their states."""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING

from shoemaker.model import Plan, PlanState, check_plan_transition
from shoemaker.store.base import StoreError
from shoemaker.store.events import EventStore

if TYPE_CHECKING:
    from shoemaker.events import PlanStateChanged


class PlanMoved(StoreError):
    """A plan is no longer in the state a caller decided on: nothing was written."""


class PlanStore(EventStore):
    """The ``plans`` table."""

    @staticmethod
    def _plan(row: sqlite3.Row) -> Plan:
        return Plan(
            row["id"],
            row["generation"],
            PlanState(row["state"]),
            row["path"],
            row["reason"],
            row["created_at"],
        )

    def create_plan(self, generation: str) -> tuple[Plan, PlanStateChanged]:
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO plans (generation, state, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (generation, PlanState.CREATED, now, now),
            )
            plan_id = int(cur.lastrowid or 0)
            from shoemaker.events import PlanStateChanged

            event = PlanStateChanged(
                generation=generation, plan_id=plan_id, old=None, new=PlanState.CREATED
            )
            self._insert_event(db, event)
        return self.get_plan(plan_id), event

    def get_plan(self, plan_id: int) -> Plan:
        rows = self._query("SELECT * FROM plans WHERE id = ?", (plan_id,))
        if not rows:
            raise StoreError(f"no plan {plan_id}; see `shoemaker plan list`")
        return self._plan(rows[0])

    def list_plans(self, generation: str | None = None) -> list[Plan]:
        if generation is None:
            rows = self._query("SELECT * FROM plans ORDER BY id")
        else:
            rows = self._query(
                "SELECT * FROM plans WHERE generation = ? ORDER BY id", (generation,)
            )
        return [self._plan(r) for r in rows]

    def set_plan_state(
        self,
        plan_id: int,
        new: PlanState,
        reason: str = "",
        path: str | None = None,
        expect: PlanState | None = None,
    ) -> PlanStateChanged:
        """Move a plan to ``new``, checked against the plan state machine; with ``expect``,
        only from that state (:class:`PlanMoved` otherwise, checked in the same transaction)."""
        reason = self.redactor.text(reason)
        with self._tx() as db:
            row = db.execute("SELECT * FROM plans WHERE id = ?", (plan_id,)).fetchone()
            if row is None:
                raise StoreError(f"no plan {plan_id}; see `shoemaker plan list`")
            old = PlanState(row["state"])
            if expect is not None and old != expect:
                raise PlanMoved(f"plan {plan_id} is {old} now, not {expect}")
            check_plan_transition(plan_id, old, new)
            db.execute(
                "UPDATE plans SET state = ?, reason = ?, path = COALESCE(?, path), "
                "updated_at = ? WHERE id = ?",
                (new, reason, path, time.time(), plan_id),
            )
            from shoemaker.events import PlanStateChanged

            event = PlanStateChanged(
                generation=row["generation"], plan_id=plan_id, old=old, new=new, reason=reason
            )
            self._insert_event(db, event)
        return event
