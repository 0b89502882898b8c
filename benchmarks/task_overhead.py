"""Overhead of shoemaker's stitch pipeline per task, against the bare git plumbing.

    uv run python benchmarks/task_overhead.py [--files 5000] [--tasks 8] [--dir DIR]

On a generated repository of ``--files`` files, measured in the same run:

- baseline: benchmarks/plumbing.sh does what one task needs from git by hand (worktree add,
  write a file, commit, squash merge, commit, worktree remove, branch delete);
- shoemaker: the whole stitch pipeline (store, events, the rehearsal agent as a real process
  writing one file, commit with trailers, merge queue, metrics, history), once with a fresh
  worktree per task and once with the worktree pool.

Goal: at most 1.2× the baseline without reuse; below 1 with it. ``--dir`` picks the disk (the
default is the system temp dir, a real disk where worktree creation is what costs).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
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

HERE = Path(__file__).resolve().parent


def make_repo(path: Path, files: int, reuse: bool) -> Git:
    git = Git.init_repo(path)
    for n in range(files):
        sub = path / "src" / f"pkg{n % 50:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"module_{n:05d}.py").write_text(
            f"VALUE_{n} = {n}\n\n\ndef f_{n}():\n    return {n}\n"
        )
    config = {
        "worktree_dir": str(path.parent / "worktrees"),
        "reuse_worktrees": reuse,
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
    (path / "configuration.yaml").write_text(yaml.safe_dump(config))
    (path / ".gitignore").write_text("__pycache__/\n")
    git.commit_all(path, "generated repository")
    return git


async def shoemaker_per_task(root: Path, files: int, tasks: int, reuse: bool) -> float:
    make_repo(root / "repo", files, reuse)
    project = Project.open(root / "repo")
    gen = start_generation(project, "bench")
    news = [
        NewTask(f"task {i}", f"<!-- rehearsal\nfiles: {{t{i}.py: 'T = {i}'}}\n-->")
        for i in range(tasks)
    ]
    project.store.add_tasks(gen.name, news, 1, "bench")
    engine = Engine(project, max_parallel=1)
    started = time.perf_counter()
    outcomes = await engine.stitch_ready(gen)
    await engine.close()
    elapsed = time.perf_counter() - started
    assert all(o.reason == "merged" for o in outcomes), outcomes
    return elapsed / tasks


def plumbing_per_task(root: Path, files: int, tasks: int) -> float:
    git = make_repo(root / "repo", files, True)
    (root / "worktrees").mkdir()
    started = time.perf_counter()
    subprocess.run(
        [str(HERE / "plumbing.sh"), str(git.root), str(root / "worktrees"), str(tasks)], check=True
    )
    return (time.perf_counter() - started) / tasks


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--dir", default=None, help="where to create the repositories")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shoemaker-overhead-", dir=args.dir) as tmp:
        base = Path(tmp)
        plain = plumbing_per_task(base / "plain", args.files, args.tasks)
        fresh = await shoemaker_per_task(base / "fresh", args.files, args.tasks, reuse=False)
        pooled = await shoemaker_per_task(base / "pooled", args.files, args.tasks, reuse=True)
    print(f"{args.files:,} files, {args.tasks} tasks each, in {args.dir or tempfile.gettempdir()}")
    print(f"git plumbing by hand:        {plain * 1000:7.0f} ms per task (baseline)")
    print(
        f"shoemaker, fresh worktrees:  {fresh * 1000:7.0f} ms per task  "
        f"{fresh / plain:.2f}× (goal ≤ 1.2)"
    )
    print(
        f"shoemaker, worktree pool:    {pooled * 1000:7.0f} ms per task  "
        f"{pooled / plain:.2f}× (goal < 1)"
    )


if __name__ == "__main__":
    asyncio.run(main())
