"""How close the worker pool gets to the best possible makespan on a random task graph.

    uv run python benchmarks/scheduler_efficiency.py [--tasks 200] [--parallel 8] [--seed 7]

A seeded random DAG of ``--tasks`` tasks, each a rehearsal agent that sleeps a seeded
duration, runs through the real engine with ``--parallel`` workers. No schedule can beat
max(critical path, total work ÷ workers); the figure is the makespan divided by that bound,
measured in the same run. Goal: at most 1.10. ``--scale`` multiplies every duration (longer
tasks make shoemaker's fixed cost per task, worktree and merge, weigh less).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

import yaml

from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.project import Project
from shoemaker.git import Git
from shoemaker.store import NewTask


def random_dag(count: int, seed: int, scale: float) -> list[tuple[float, list[int]]]:
    """(duration, dependencies) per task; dependencies point to earlier tasks only."""
    rng = random.Random(seed)
    dag = []
    for i in range(count):
        parents = rng.sample(range(i), k=min(i, rng.choice((0, 0, 1, 1, 2, 3))))
        dag.append((round(rng.uniform(0.5, 2.0) * scale, 2), sorted(parents)))
    return dag


def lower_bound(dag: list[tuple[float, list[int]]], workers: int) -> tuple[float, float, float]:
    finish: list[float] = []
    for duration, parents in dag:
        finish.append(duration + max((finish[p] for p in parents), default=0.0))
    critical = max(finish)
    work = sum(d for d, _ in dag)
    return critical, work, max(critical, work / workers)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    dag = random_dag(args.tasks, args.seed, args.scale)
    critical, work, bound = lower_bound(dag, args.parallel)
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="shoemaker-sched-", dir=base) as tmp:
        git = Git.init_repo(Path(tmp) / "repo")
        (git.root / "README.md").write_text("schedule\n")
        config = {
            "worktree_dir": str(Path(tmp) / "worktrees"),
            "max_parallel": args.parallel,
            "agent": {
                "command": sys.executable,
                "args": [
                    "-m",
                    "shoemaker.agents.rehearsal",
                    "--dangerously-skip-permissions",
                    "-p",
                    "--verbose",
                    "--output-format",
                    "stream-json",
                ],
                "env": {"IS_SANDBOX": "1"},
            },
        }
        (git.root / "configuration.yaml").write_text(yaml.safe_dump(config))
        git.commit_all(git.root, "schedule")
        project = Project.open(git.root)
        gen = start_generation(project, "sched")
        news = [
            NewTask(
                f"t{i}",
                f"<!-- rehearsal\nduration: {d}\nfiles: {{t{i}.txt: '{i}'}}\n-->",
                after=tuple(parents),
            )
            for i, (d, parents) in enumerate(dag)
        ]
        project.store.add_tasks(gen.name, news, 1, "bench")
        engine = Engine(project, max_parallel=args.parallel)
        started = time.perf_counter()
        outcomes = await engine.stitch_ready(gen)
        makespan = time.perf_counter() - started
        await engine.close()
        merged = sum(1 for o in outcomes if o.reason == "merged")
    print(f"{args.tasks} tasks (seed {args.seed}), {args.parallel} workers, {merged} merged")
    print(
        f"critical path {critical:.1f}s · total work {work:.1f}s · "
        f"work/{args.parallel} {work / args.parallel:.1f}s · bound {bound:.1f}s"
    )
    print(f"makespan {makespan:.1f}s → {makespan / bound:.2f}× the bound (goal ≤ 1.10)")


if __name__ == "__main__":
    asyncio.run(main())
