"""``executor: dask`` in ``configuration.yaml``: the cluster agents and gates run on."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator

from shoemaker.config.strict import Strict as _Strict


class DaskConfig(_Strict):
    """Where agents and gates run when ``executor`` is dask."""

    scheduler: str = "local:2"
    """``tcp://host:port`` of a running ``dask scheduler``, or ``local:N`` for a cluster of N
    workers on this machine that shoemaker starts and stops itself."""
    resources: dict[str, float] = Field(default_factory=dict)
    """What one attempt holds on its worker, e.g. ``{agent_slot: 1}`` with workers started
    with ``--resources agent_slot=2`` (two attempts at once there); empty: any worker takes
    as many as it has threads."""
    connect_timeout_sec: float = Field(default=20, gt=0)
    """How long connecting to the scheduler may take before the run pauses."""
    batch_sec: float = Field(default=0.03, ge=0.005, le=1)
    """How often a worker sends the agent's new output lines home, in seconds."""

    @field_validator("resources", mode="before")
    @classmethod
    def _resources(cls, value: Any) -> dict[str, float]:
        return task_resources(value)

    @field_validator("scheduler")
    @classmethod
    def _scheduler_address(cls, value: str) -> str:
        if value.startswith("local:"):
            count = value.removeprefix("local:")
            if not count.isdigit() or int(count) < 1:
                raise ValueError("local:N needs a number of workers, e.g. local:2")
            return value
        if not value.startswith(("tcp://", "tls://")) or ":" not in value.split("://", 1)[1]:
            raise ValueError("must be tcp://host:port (a running scheduler) or local:N")
        return value


def task_resources(value: Any) -> dict[str, float]:
    """A task's (or the configuration's) ``resources``: the Dask resources one attempt holds
    on its worker, names to positive numbers (``{gpu: 1}``); None or empty: none of its own.
    Raises ValueError saying what is wrong and what is expected."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(
            f"resources must map names to positive numbers, e.g. {{gpu: 1}}; got {value!r}"
        )
    found: dict[str, float] = {}
    for name, amount in value.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"resources: a name must be text, got {name!r}")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise ValueError(f"resources: {name} must be a positive number, got {amount!r}")
        if not (amount > 0 and math.isfinite(amount)):
            raise ValueError(f"resources: {name} must be a positive number, got {amount!r}")
        found[name] = float(amount)
    return found
