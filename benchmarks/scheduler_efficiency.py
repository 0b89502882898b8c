"""How close the worker pool gets to the best possible makespan on a random task graph.

    uv run python benchmarks/scheduler_efficiency.py [--tasks 200] [--parallel 8] [--seed 7]
        [--scale 1] [--repeat N [--vary-seed]] [--profile]

A seeded random DAG of ``--tasks`` tasks, each a rehearsal agent that sleeps a seeded
duration, runs through the real engine with ``--parallel`` workers. No schedule can beat
max(critical path, total work ÷ workers); the figure is the makespan divided by that bound,
measured in the same run. Goal: at most 1.10. ``--scale`` multiplies every duration (longer
tasks make shoemaker's fixed cost per task, worktree and merge, weigh less). ``--repeat``
runs it N times and stops at the first run that fails (an error, or a task not merged);
``--profile`` prints where a task's time goes, and how long a slot given back stands empty
before the next agent starts on it.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import json
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

import shoemaker
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.project import Project
from shoemaker.events import AgentOutput, AgentStarted, MergeResult, TaskStateChanged
from shoemaker.git import Git
from shoemaker.store import NewTask, Store


def script(kind: str, keys: dict[str, object]) -> str:
    """A task's rehearsal block: JSON (read without PyYAML) or the same keys as YAML."""
    body = json.dumps(keys) + "\n" if kind == "json" else yaml.safe_dump(keys)
    return f"<!-- rehearsal\n{body}-->"


def random_dag(count: int, seed: int, scale: float) -> list[tuple[float, list[int]]]:
    """(duration, dependencies) per task; dependencies point to earlier tasks only."""
    rng = random.Random(seed)
    dag = []
    for i in range(count):
        parents = rng.sample(range(i), k=min(i, rng.choice((0, 0, 1, 1, 2, 3))))
        dag.append((round(rng.uniform(0.5, 2.0) * scale, 2), sorted(parents)))
    return dag


def graph_tasks(dag: list[tuple[float, list[int]]], kind: str = "json") -> list[NewTask]:
    """The graph as tasks for the rehearsal agent: each works its duration, writes one file
    (its script written as ``kind``: json or yaml)."""
    return [
        NewTask(
            f"t{i}",
            script(kind, {"duration": d, "files": {f"t{i}.txt": f"{i}"}}),
            after=tuple(parents),
        )
        for i, (d, parents) in enumerate(dag)
    ]


def lower_bound(dag: list[tuple[float, list[int]]], workers: int) -> tuple[float, float, float]:
    finish: list[float] = []
    for duration, parents in dag:
        finish.append(duration + max((finish[p] for p in parents), default=0.0))
    critical = max(finish)
    work = sum(d for d, _ in dag)
    return critical, work, max(critical, work / workers)


def slot_idle(marks: dict[int, dict[str, float]], workers: int) -> dict[int, float]:
    """Per task that took a slot another task gave back: how long that slot stood empty while
    a task was ready for it, from the slot's release to this task's claim.

    The benchmark runs no gate, so a task gives its slot back when it is recorded
    ``verifying`` (its agent exited, its commit is next). Slots are not named: each claim
    after the first ``workers`` takes the earliest release not yet taken before it, and the
    slot counts as idle from that release or from when the claimed task became ready, the
    later of the two."""
    releases = sorted(m["verifying"] for m in marks.values() if "verifying" in m)
    claims = sorted((m["running"], task_id) for task_id, m in marks.items() if "running" in m)
    idle: dict[int, float] = {}
    taken = 0
    for claimed, task_id in claims[workers:]:
        if taken >= len(releases) or releases[taken] > claimed:
            continue  # a slot never used before (fewer ready tasks than slots at first)
        ready = marks[task_id].get("ready", 0.0)
        idle[task_id] = max(0.0, claimed - max(releases[taken], ready))
        taken += 1
    return idle


def profile(
    store: Store, generation: str, dag: list[tuple[float, list[int]]], makespan: float, workers: int
) -> list[str]:
    """Where a task's time goes, median and total over the run's first attempts, from the
    store's event timestamps and runs: what a slot holds besides the agent's own work, how
    long a slot given back stands empty before the next agent is started on it, and what the
    merge queue (one merge at a time) holds."""
    marks: dict[int, dict[str, float]] = {}
    for _, event in store.events_after(0, limit=1_000_000, generation=generation):
        if isinstance(event, TaskStateChanged) and event.old is not None:
            marks.setdefault(event.task_id, {}).setdefault(str(event.new), event.ts)
        elif isinstance(event, MergeResult):
            marks.setdefault(event.task_id, {}).setdefault("merged", event.ts)
        elif isinstance(event, AgentStarted) and event.task_id is not None:
            marks.setdefault(event.task_id, {}).setdefault("pid", event.ts)
        elif isinstance(event, AgentOutput) and event.task_id is not None:
            marks.setdefault(event.task_id, {}).setdefault("first line", event.ts)
            marks[event.task_id]["last line"] = event.ts
    for run in store.runs(generation=generation):
        if run.task_id is not None and run.ended_at is not None:
            marks.setdefault(run.task_id, {}).setdefault("spawned", run.started_at)
            marks[run.task_id].setdefault("exited", run.ended_at)
    ids = sorted(marks)
    idle = slot_idle(marks, workers)
    phases: dict[str, list[float]] = {
        k: []
        for k in (
            "claim → agent spawned (worktree, prompt)",
            "agent process beyond its own work (start, exit)",
            "  of which: run recorded → process started",
            "  of which: process started → first line",
            "  of which: first line → last line, less its work",
            "  of which: last line → run recorded ended",
            "agent exit → verifying (slot released)",
            "slot idle: released → next task claimed",
            "slot released → next agent's process started",
            "verifying → merging (commit, gates)",
            "merge queue: waiting",
            "merge queue: merging",
            "merged → done (metrics, store)",
        )
    }
    names = list(phases)
    previous_merge = 0.0
    for index, task_id in sorted(
        ((i, t) for i, t in enumerate(ids)), key=lambda it: marks[it[1]].get("merged", 0.0)
    ):
        m = marks[task_id]
        if not all(
            k in m
            for k in ("running", "spawned", "exited", "verifying", "merging", "merged", "done")
        ):
            continue
        own = dag[index][0]
        start = max(m["merging"], previous_merge)
        previous_merge = m["merged"]
        values: tuple[float | None, ...] = (
            m["spawned"] - m["running"],
            m["exited"] - m["spawned"] - own,
            m["pid"] - m["spawned"],
            # The rehearsal agent prints its first line as soon as it has started, and
            # spreads its work over the lines after it.
            m["first line"] - m["pid"],
            m["last line"] - m["first line"] - own,
            m["exited"] - m["last line"],
            m["verifying"] - m["exited"],
            idle.get(task_id),
            None if task_id not in idle else idle[task_id] + m["pid"] - m["running"],
            m["merging"] - m["verifying"],
            start - m["merging"],
            m["merged"] - start,
            m["done"] - m["merged"],
        )
        for name, value in zip(names, values, strict=True):
            if value is not None:
                phases[name].append(max(0.0, value))
    lines = ["where a task's time goes (median per task · total over the run):"]
    for name, values in phases.items():
        if values:
            lines.append(
                f"  {name:<48} {statistics.median(values) * 1000:7.0f} ms · {sum(values):6.1f} s"
            )

    def total(end: str) -> float:
        return sum(m[end] - m["running"] for m in marks.values() if end in m and "running" in m)

    # A slot is held to the agent's exit (no gate in the worktree) or to the merge queue.
    lines.append(
        f"  claim → agent exit {total('exited'):.1f} s, claim → merging {total('merging'):.1f} s, "
        f"of {makespan * workers:.1f} slot-seconds; agents' own work {sum(d for d, _ in dag):.1f} s"
    )
    return lines


GOAL = 1.10


async def run_once(args: argparse.Namespace, seed: int) -> tuple[float, int, list[str]]:
    """One run of the seeded graph: (makespan ÷ bound, tasks merged, the lines to print)."""
    dag = random_dag(args.tasks, seed, args.scale)
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
        project.store.add_tasks(gen.name, graph_tasks(dag, args.script), 1, "bench")
        engine = Engine(project, max_parallel=args.parallel)
        cpu_before = (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
        started = time.perf_counter()
        outcomes = await engine.stitch_ready(gen)
        makespan = time.perf_counter() - started
        await engine.close()
        merged = sum(1 for o in outcomes if o.reason == "merged")
        ratio = makespan / bound
        lines = [
            f"{args.tasks} tasks (seed {seed}), {args.parallel} workers, {merged} merged",
            f"critical path {critical:.1f}s · total work {work:.1f}s · "
            f"work/{args.parallel} {work / args.parallel:.1f}s · bound {bound:.1f}s",
            f"makespan {makespan:.1f}s → {ratio:.2f}× the bound (goal ≤ {GOAL:.2f}: "
            f"{'holds' if ratio <= GOAL else 'missed'})",
        ]
        if args.profile:
            lines += profile(project.store, gen.name, dag, makespan, args.parallel)
            own, children = (
                resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
            )
            engine_cpu = (
                own.ru_utime + own.ru_stime - sum((cpu_before[0].ru_utime, cpu_before[0].ru_stime))
            )
            child_cpu = (
                children.ru_utime
                + children.ru_stime
                - sum((cpu_before[1].ru_utime, cpu_before[1].ru_stime))
            )
            lines.append(
                f"  CPU: shoemaker's process {engine_cpu:.1f} s "
                f"({engine_cpu / args.tasks * 1000:.0f} ms a task), its children (agents, git) "
                f"{child_cpu:.1f} s ({child_cpu / args.tasks * 1000:.0f} ms a task)"
            )
        project.store.close()
    return ratio, merged, lines


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument(
        "--script",
        choices=("json", "yaml"),
        default="json",
        help="how the tasks' rehearsal scripts are written (yaml: the agent imports PyYAML)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run N times; stop at the first that fails"
    )
    parser.add_argument(
        "--vary-seed", action="store_true", help="with --repeat: seeds SEED, SEED+1, …"
    )
    parser.add_argument("--profile", action="store_true", help="print where a task's time goes")
    args = parser.parse_args()
    # As installed, the agents read shoemaker's bytecode. Where PYTHONDONTWRITEBYTECODE is set
    # and nothing compiled the checkout, each agent would compile its modules from source as
    # it starts (14 ms of a 22 ms start, measured), and the figure would time the compiler.
    compileall.compile_dir(Path(shoemaker.__file__).parent, quiet=1)
    ratios: list[float] = []
    for n in range(args.repeat):
        seed = args.seed + n if args.vary_seed else args.seed
        try:
            ratio, merged, lines = await run_once(args, seed)
        except Exception as exc:  # the failure this option looks for: say which run, stop
            print(f"run {n + 1}/{args.repeat} (seed {seed}) FAILED: {type(exc).__name__}: {exc}")
            return 1
        prefix = f"run {n + 1}/{args.repeat}: " if args.repeat > 1 else ""
        print(prefix + "\n".join(lines))
        if merged != args.tasks:
            print(f"run {n + 1}/{args.repeat} FAILED: {merged} of {args.tasks} tasks merged")
            return 1
        ratios.append(ratio)
    if args.repeat > 1:
        held = sum(r <= GOAL for r in ratios)
        print(
            f"{len(ratios)} of {args.repeat} runs passed (every task merged); ratios "
            + " ".join(f"{r:.2f}" for r in ratios)
            + f"; median {statistics.median(ratios):.2f}, worst {max(ratios):.2f}; "
            f"goal ≤ {GOAL:.2f} held in {held} of {len(ratios)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
