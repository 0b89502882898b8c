"""Expected durations of open tasks, the weights of the launch order's critical path.

Learnt from the tasks the run has merged (the time each took, worktree to merge, as its
metrics record it): an open task is expected to take the mean of the ``similar`` merged tasks
whose descriptions are closest in length to its own. Before any task has merged there is
nothing to go by, and every task weighs the same (the longest chain counts tasks).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from shoemaker.model import TERMINAL_TASK_STATES, Task


class Durations:
    """Measured durations of a run's merged tasks, and what they predict for the others."""

    def __init__(self, similar: int = 5) -> None:
        self.similar = max(1, similar)
        self._measured: dict[int, float] = {}
        self._cache: tuple[tuple[int, int], dict[int, float]] | None = None

    def learn(self, task_id: int, seconds: float) -> None:
        """A task merged after ``seconds``."""
        if seconds > 0:
            self._measured[task_id] = seconds

    def expected(self, tasks: Iterable[Task]) -> dict[int, float] | None:
        """Each open task's expected duration (None: nothing measured yet)."""
        listed = list(tasks)
        samples = sorted(
            (len(t.description), self._measured[t.id]) for t in listed if t.id in self._measured
        )
        if not samples:
            return None
        key = (len(samples), len(listed))
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]  # nothing measured or added since: the same weights
        lengths = [length for length, _ in samples]
        weights: dict[int, float] = {}
        for task in listed:
            if task.state in TERMINAL_TASK_STATES:
                continue
            weights[task.id] = self._nearest_mean(samples, lengths, len(task.description))
        self._cache = (key, weights)
        return weights

    def _nearest_mean(
        self, samples: list[tuple[int, float]], lengths: list[int], length: int
    ) -> float:
        """The mean duration of the ``similar`` samples closest in length to ``length``."""
        right = bisect.bisect_left(lengths, length)
        left = right - 1
        taken: list[float] = []
        while len(taken) < self.similar and (left >= 0 or right < len(samples)):
            if right >= len(samples) or (
                left >= 0 and length - lengths[left] <= lengths[right] - length
            ):
                taken.append(samples[left][1])
                left -= 1
            else:
                taken.append(samples[right][1])
                right += 1
        return sum(taken) / len(taken)
