"""The task graph's rules: pure functions over ids, states and dependencies, no store."""

from __future__ import annotations

from shoemaker.engine.durations import Durations
from shoemaker.engine.graph import (
    blocked_by_failure,
    blocked_reason,
    dependents,
    launch_order,
    unblocked,
)
from shoemaker.model import Task, TaskState

P, R, D, F = TaskState.PROPOSED, TaskState.READY, TaskState.DONE, TaskState.FAILED

# 1 → {2, 3} → 4: the diamond.
DIAMOND = {2: [1], 3: [1], 4: [2, 3]}
# 1 → 2 → 3 → 4: the chain.
CHAIN = {2: [1], 3: [2], 4: [3]}


def test_dependents_are_transitive_and_in_id_order() -> None:
    assert dependents(DIAMOND, 1) == [2, 3, 4]
    assert dependents(DIAMOND, 2) == [4]
    assert dependents(DIAMOND, 4) == []
    assert dependents(CHAIN, 2) == [3, 4]


def test_diamond_join_waits_for_both_sides() -> None:
    assert unblocked({1: D, 2: P, 3: P, 4: P}, DIAMOND) == [2, 3]
    assert unblocked({1: D, 2: D, 3: R, 4: P}, DIAMOND) == []
    assert unblocked({1: D, 2: D, 3: D, 4: P}, DIAMOND) == [4]
    # Only proposed tasks move; a ready one is not promoted again.
    assert unblocked({1: D, 2: R, 3: R, 4: P}, DIAMOND) == []


def test_chain_unblocks_one_link_at_a_time() -> None:
    assert unblocked({1: D, 2: P, 3: P, 4: P}, CHAIN) == [2]
    assert unblocked({1: D, 2: D, 3: P, 4: P}, CHAIN) == [3]


def test_unblocked_among_a_subset_and_missing_dependencies_are_not_done() -> None:
    states = {1: D, 2: P, 3: P, 4: P}
    assert unblocked(states, DIAMOND, among=[3, 4]) == [3]
    assert unblocked({2: P}, DIAMOND) == []  # task 1 unknown: not done


def test_failure_blocks_open_dependents_transitively() -> None:
    assert blocked_by_failure({1: D, 2: F, 3: P, 4: P}, CHAIN, 2) == [3, 4]
    # In the diamond, 2 failing blocks the join but not its sibling's running work.
    states = {1: D, 2: F, 3: TaskState.RUNNING, 4: P}
    assert blocked_by_failure(states, DIAMOND, 2) == [4]
    # A failure at the root blocks the open ones only; running and done tasks keep theirs.
    states = {1: F, 2: R, 3: TaskState.RUNNING, 4: P}
    assert blocked_by_failure(states, DIAMOND, 1) == [2, 4]
    assert blocked_reason(2) == "depends on task 2, which failed"
    assert blocked_reason(2, "was reverted") == "depends on task 2, which was reverted"


def test_launch_order_prefers_priority_then_the_longer_chain() -> None:
    def task(i: int, state: TaskState, deps: list[int], priority: int = 0) -> Task:
        return Task(i, "g", f"t{i}", "", state, priority=priority, depends_on=deps)

    # 1 heads the diamond (length 3); 5 stands alone (length 1).
    tasks = [task(1, R, []), task(2, P, [1]), task(3, P, [1]), task(4, P, [2, 3]), task(5, R, [])]
    assert [t.id for t in launch_order(tasks)] == [1, 5]
    tasks[4].priority = 1
    assert [t.id for t in launch_order(tasks)] == [5, 1]


def test_measured_durations_weigh_the_critical_path() -> None:
    def task(i: int, state: TaskState, deps: list[int], text: str) -> Task:
        return Task(i, "g", f"t{i}", text, state, depends_on=deps)

    short, long = "fix a typo", "rewrite the storage layer and migrate every table it holds"
    done = [task(1, D, [], short), task(2, D, [], short), task(3, D, [], long)]
    # 4 heads a chain of three short tasks, 7 a chain of two long ones.
    waiting = [
        task(4, R, [], short),
        task(5, P, [4], short),
        task(6, P, [5], short),
        task(7, R, [], long),
        task(8, P, [7], long),
    ]
    tasks = done + waiting
    durations = Durations(similar=1)
    assert durations.expected(tasks) is None  # nothing measured: tasks are counted
    assert [t.id for t in launch_order(tasks)] == [4, 7]
    for task_id, seconds in ((1, 50.0), (2, 50.0), (3, 900.0)):
        durations.learn(task_id, seconds)
    weights = durations.expected(tasks)
    assert weights == {4: 50.0, 5: 50.0, 6: 50.0, 7: 900.0, 8: 900.0}
    assert [t.id for t in launch_order(tasks, weights)] == [7, 4]
    assert Durations(similar=2).expected(tasks) is None
    two = Durations(similar=2)
    for task_id, seconds in ((1, 60.0), (2, 40.0), (3, 900.0)):
        two.learn(task_id, seconds)
    assert (two.expected(tasks) or {})[4] == 50.0  # the two closest in length
