"""What running attempts on a Dask cluster costs: the same task graph, local vs a loopback
cluster of two workers, in one run.

    uv run python benchmarks/dask_makespan.py [--tasks 16] [--seed 7] [--scale 1]

A seeded random graph of ``--tasks`` tasks (each a rehearsal agent that works a seeded
duration and writes a file) runs through the real engine twice, two at a time: with
``executor: local``, then with ``executor: dask`` on ``local:2`` (a scheduler and two worker
processes on 127.0.0.1, started before the clock starts). Printed: the makespan ratio (goal
≤ 1.10: the overhead is known before going wide) and each agent line's latency from its
read on the worker to its arrival in the orchestrator, p50 and p95.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from shoemaker.cluster.dask_runner import DaskRunner
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.places import ClusterPlace
from shoemaker.engine.project import Project
from shoemaker.git import Git

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scheduler_efficiency import graph_tasks, random_dag

GOAL = 1.10
PARALLEL = 2


def _config(tmp: Path, executor: str) -> dict[str, Any]:
    return {
        "worktree_dir": str(tmp / "worktrees"),
        "max_parallel": PARALLEL,
        "executor": executor,
        "dask": {"scheduler": f"local:{PARALLEL}", "resources": {"agent_slot": 1}},
        "agent": {
            "command": sys.executable,
            "args": [
                *("-m", "shoemaker.agents.rehearsal", "--dangerously-skip-permissions"),
                *("-p", "--verbose", "--output-format", "stream-json"),
            ],
            "env": {"IS_SANDBOX": "1"},
        },
    }


async def run_once(
    executor: str, dag: list[tuple[float, list[int]]]
) -> tuple[float, int, list[float]]:
    """(makespan, tasks merged, per-line latencies) of the graph on ``executor``."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="shoemaker-dask-", dir=base) as where:
        tmp = Path(where)
        git = Git.init_repo(tmp / "repo")
        (git.root / "README.md").write_text("makespan\n")
        (git.root / "configuration.yaml").write_text(yaml.safe_dump(_config(tmp, executor)))
        git.commit_all(git.root, "makespan")
        project = Project.open(git.root)
        gen = start_generation(project, "bench")
        project.store.add_tasks(gen.name, graph_tasks(dag), 1, "bench")
        engine = Engine(project, max_parallel=PARALLEL)
        place = engine.stitcher(gen).place
        # The cluster up before the clock starts.
        runner = await place.attempts.runner() if isinstance(place, ClusterPlace) else None
        started = time.perf_counter()
        outcomes = await engine.stitch_ready(gen)
        makespan = time.perf_counter() - started
        latencies = list(runner.latencies) if isinstance(runner, DaskRunner) else []
        await engine.close()
        project.store.close()
        return makespan, sum(1 for o in outcomes if o.reason == "merged"), latencies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    dag = random_dag(args.tasks, args.seed, args.scale)
    local, merged_local, _ = await run_once("local", dag)
    cluster, merged_cluster, latencies = await run_once("dask", dag)
    ratio = cluster / local
    print(f"{args.tasks} tasks (seed {args.seed}, scale {args.scale}), {PARALLEL} at a time")
    print(f"local:             makespan {local:.2f}s, {merged_local} merged")
    print(f"dask (2 workers):  makespan {cluster:.2f}s, {merged_cluster} merged")
    print(
        f"makespan ratio: goal ≤ {GOAL:.2f}× · measured {ratio:.2f}× · "
        f"{'holds' if ratio <= GOAL else 'missed'}"
    )
    if latencies:
        p50, p95 = _pct(latencies, 0.5) * 1000, _pct(latencies, 0.95) * 1000
        print(
            f"line latency (worker read → orchestrator), {len(latencies)} lines: "
            f"p50 {p50:.1f} ms · p95 {p95:.1f} ms (batches every 30 ms: goal p95 ≤ 100 ms · "
            f"{'holds' if p95 <= 100 else 'missed'})"
        )
    ok = merged_local == merged_cluster == args.tasks
    if not ok:
        print("FAILED: not every task merged")
    return 0 if ok else 1


if __name__ == "__main__":  # LocalCluster starts worker processes that import this module
    sys.exit(asyncio.run(main()))
