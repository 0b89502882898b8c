"""A project with fixed data for dashboard tests (every task state, runs, gates, a diff), and
a counter of the screen's full layouts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import yaml
from textual.screen import Screen

from shoemaker.engine.project import Project
from shoemaker.git import Git
from shoemaker.model import TaskState, Usage
from shoemaker.store import NewTask

CREATED = 1_700_000_000.0
#: The dashboard's clock in tests: 12 minutes 34 seconds into the generation.
CLOCK = CREATED + 754

_T = TaskState
# title, path of states from ready, depends on (positions), tokens in/out, cost, wall seconds
TASKS: list[tuple[str, list[TaskState], list[int], int, int, float, float]] = [
    (
        "Parse the configuration file",
        [_T.RUNNING, _T.VERIFYING, _T.MERGING, _T.DONE],
        [],
        5200,
        640,
        0.0412,
        48,
    ),
    (
        "Add the task store",
        [_T.RUNNING, _T.VERIFYING, _T.MERGING, _T.DONE],
        [0],
        6100,
        910,
        0.0533,
        95,
    ),
    ("Render the queue", [_T.RUNNING], [1], 2100, 120, 0.0101, 30),
    ("Validate proposals", [_T.RUNNING, _T.VERIFYING], [0], 3300, 300, 0.0222, 41),
    ("Merge under a lock", [_T.RUNNING, _T.VERIFYING, _T.MERGING], [0], 2900, 280, 0.0190, 37),
    ("Retry with context", [_T.RUNNING, _T.FAILED], [1], 8000, 1200, 0.0810, 120),
    ("Budget checks", [_T.BLOCKED], [5], 0, 0, 0.0, 0),
    (
        "Squash merges",
        [_T.RUNNING, _T.VERIFYING, _T.MERGING, _T.CONFLICT],
        [0],
        4100,
        500,
        0.0305,
        60,
    ),
    (
        "Touch the migrations",
        [_T.RUNNING, _T.VERIFYING, _T.NEEDS_REVIEW],
        [],
        3900,
        450,
        0.0244,
        52,
    ),
    ("Write the docs", [_T.READY], [1], 0, 0, 0.0, 0),
    ("Drop the old parser", [_T.CANCELLED], [], 0, 0, 0.0, 0),
    ("Add metrics", [], [2, 3], 0, 0, 0.0, 0),
]

TRANSCRIPT = [
    {
        "type": "system",
        "subtype": "init",
        "cwd": "/w",
        "session_id": "s",
        "tools": ["Read"],
        "model": "claude-sonnet-4-5",
    },
    {
        "type": "assistant",
        "message": {
            "id": "m1",
            "content": [{"type": "text", "text": "Reading the configuration module."}],
        },
    },
    {
        "type": "assistant",
        "message": {
            "id": "m1",
            "content": [
                {
                    "type": "tool_use",
                    "id": "t1",
                    "name": "Read",
                    "input": {"file_path": "/w/config.py"},
                }
            ],
        },
    },
    {
        "type": "user",
        "message": {
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "class Config: ..."}
            ]
        },
    },
    {
        "type": "assistant",
        "message": {
            "id": "m2",
            "content": [
                {"type": "tool_use", "id": "t2", "name": "Bash", "input": {"command": "pytest -q"}}
            ],
        },
    },
    {
        "type": "user",
        "message": {
            "content": [{"type": "tool_result", "tool_use_id": "t2", "content": "12 passed"}]
        },
    },
    {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "num_turns": 2,
        "total_cost_usd": 0.0412,
        "usage": {"input_tokens": 5200, "output_tokens": 640},
    },
]


def fixed_project(root: Path, **settings: Any) -> Project:
    """A repository (named ``project``) and a store with fixed rows; no agent ever runs.
    ``settings`` are added to its configuration (``budgets=…``)."""
    git = Git.init_repo(root / "project")
    (git.root / "config.py").write_text("class Config:\n    pass\n")
    config = {
        "worktree_dir": str(root / "worktrees"),
        "max_parallel": 2,
        "agent": {"command": "shoemaker-rehearsal"},
        **settings,
    }
    (git.root / "configuration.yaml").write_text(yaml.safe_dump(config))
    base = git.commit_all(git.root, "initial")
    assert base is not None
    git.create_branch("generation-g1", base)
    git.checkout("generation-g1")
    (git.root / "config.py").write_text("class Config:\n    path = 'configuration.yaml'\n")
    merged = git.commit_all(
        git.root, "Parse the configuration file (task #1)", "", {"Shoemaker-Task": "1"}
    )
    project = Project.open(git.root)
    store = project.store
    store.create_generation("g1", "generation-g1", "main", base)
    ids: list[int] = []
    for title, _path, deps, *_numbers in TASKS:
        (task,), _ = store.add_tasks(
            "g1",
            [NewTask(title, f"Do: {title}.", depends_on=tuple(ids[d] for d in deps))],
            1,
            "measure",
        )
        ids.append(task.id)
    for task_id, (title, path, _deps, fresh, out, cost, wall) in zip(ids, TASKS, strict=True):
        current = store.get_task(task_id).state
        if path and current == TaskState.PROPOSED and path[0] != TaskState.BLOCKED:
            store.transition_task(task_id, TaskState.READY)
        for state in (s for s in path if s != TaskState.READY):
            extra: dict[str, Any] = (
                {"merged_commit": merged} if state == TaskState.DONE and task_id == ids[0] else {}
            )
            store.transition_task(
                task_id,
                state,
                _reason(state),
                count_attempt=state == TaskState.RUNNING,
                branch=f"task/g1-{task_id}",
                **extra,
            )
        if fresh:
            run = store.start_run(
                generation="g1",
                task_id=task_id,
                phase="stitch",
                attempt=1,
                prompt=f"# Task #{task_id}: {title}\n",
                argv=["claude"],
                env_names=["PATH"],
                cwd="/w",
            )
            raw = "\n".join(json.dumps(line) for line in TRANSCRIPT).encode() + b"\n"
            ok = TaskState.FAILED not in path
            store.finish_run(
                run,
                transcript=raw,
                exit_code=0 if ok else 1,
                ended="result",
                subtype="success",
                is_error=not ok,
                ok=ok,
                usage=Usage(fresh, out),
                cost_usd=cost,
                wall_s=wall,
                ended_at=CREATED + 60,
                reason="" if ok else "gate 'tests' exited 1 (expected 0)",
            )
            store.record_gate(
                task_id=task_id,
                run_id=run,
                name="tests",
                location="worktree",
                passed=ok,
                exit_code=0 if ok else 1,
                duration_s=3.5,
                output_tail="12 passed" if ok else "1 failed",
            )
    store.record_metrics(
        ids[0],
        commit_sha=merged,
        merge_sha=merged,
        files_changed=1,
        insertions=1,
        deletions=0,
        prod_loc_before=2,
        prod_loc_after=3,
        test_loc_before=0,
        test_loc_after=0,
        duration_s=48,
    )
    store.record_metrics(
        ids[1],
        commit_sha=merged,
        merge_sha=merged,
        files_changed=3,
        insertions=120,
        deletions=7,
        prod_loc_before=3,
        prod_loc_after=100,
        test_loc_before=0,
        test_loc_after=16,
        duration_s=95,
    )
    # Fixed times, so that nothing on screen depends on when the test ran.
    db = sqlite3.connect(store.path)
    with db:
        db.execute("UPDATE generations SET created_at = ?, updated_at = ?", (CREATED, CREATED))
        db.execute("UPDATE generations SET state = 'running'")
        db.execute("UPDATE tasks SET created_at = ?, updated_at = ? + id", (CREATED, CREATED))
        # Every run ended two minutes in, after its wall time.
        db.execute(
            "UPDATE runs SET started_at = ? - wall_s, ended_at = ?", (CREATED + 120, CREATED + 120)
        )
    db.close()
    return project


def _reason(state: TaskState) -> str:
    return {
        TaskState.FAILED: "gate 'tests' exited 1 (after 2 attempts)",
        TaskState.CONFLICT: "merge into generation-g1 failed: conflict in store.py",
        TaskState.NEEDS_REVIEW: "touches migrations/",
        TaskState.DONE: "merged",
    }.get(state, "")


def assistant_line(message_id: str, text: str, input_tokens: int, output_tokens: int) -> bytes:
    """One stream-json ``assistant`` line with the usage its message reported so far."""
    line = {
        "type": "assistant",
        "message": {
            "id": message_id,
            "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": text}],
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        },
    }
    return json.dumps(line).encode() + b"\n"


def agent_at_work(project: Project, task_id: int, lines: list[bytes]) -> Path:
    """A second attempt of running task ``task_id`` whose agent is still at work: its run
    started and never ended, and ``lines`` are what it printed so far (its transcript file,
    where a live agent's stream goes). Returns the transcript, to append to."""
    run = project.store.start_run(
        generation="g1",
        task_id=task_id,
        phase="stitch",
        attempt=2,
        prompt=f"# Task #{task_id}\n",
        argv=["claude"],
        env_names=["PATH"],
        cwd="/w",
    )
    project.runs_dir.mkdir(parents=True, exist_ok=True)
    transcript = project.runs_dir / f"{run}.jsonl"
    transcript.write_bytes(b"".join(lines))
    db = sqlite3.connect(project.store.path)
    with db:
        db.execute("UPDATE runs SET started_at = ? WHERE id = ?", (CLOCK - 20, run))
    db.close()
    return transcript


def live_worktree(project: Project, task_id: int, files: dict[str, str]) -> Path:
    """Task ``task_id``'s branch checked out in a worktree of its own, where its agent has
    written ``files`` so far (not committed)."""
    task = project.store.get_task(task_id)
    path = project.root.parent / "worktrees" / f"task-{task_id}"
    project.git.add_worktree(path, task.branch, "generation-g1")
    for name, text in files.items():
        (path / name).write_text(text)
    db = sqlite3.connect(project.store.path)
    with db:
        db.execute("UPDATE tasks SET worktree = ? WHERE id = ?", (str(path), task_id))
    db.close()
    return path


def count_layouts(screen: Screen[Any]) -> list[object]:
    """Every full layout of ``screen`` from now on (Textual lays a screen out whole)."""
    layouts: list[object] = []
    refresh_layout = screen._refresh_layout

    def counted(*args: Any, **kwargs: Any) -> None:
        layouts.append(args)
        refresh_layout(*args, **kwargs)

    screen._refresh_layout = counted  # type: ignore[method-assign]
    return layouts
