"""Partial execution (run --only / --skip / --from) and reverting a merged task."""

from __future__ import annotations

from pathlib import Path

from projects import cli, make_project, scripted, task
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.project import Project
from shoemaker.engine.recovery import landed_tasks
from shoemaker.engine.selection import Selection
from shoemaker.model import TaskState


def four(fast_tmp: Path) -> Project:
    """Four independent tasks, each writing its own file, measured but not run."""
    project = make_project(fast_tmp, [task(n, files={f"{n}.py": "X = 1\n"}) for n in "abcd"])
    start_generation(project, "g")
    assert cli(project, "measure").returncode == 0
    return project


async def four_scripted(fast_tmp: Path) -> Project:
    """The same four tasks, measured in this process, their agents scripted."""
    project = scripted(
        make_project(fast_tmp, [task(n, files={f"{n}.py": "X = 1\n"}) for n in "abcd"])
    )
    start_generation(project, "g")
    await Engine(project).measure_once()
    return project


def done_ids(project: Project) -> list[int]:
    return [t.id for t in project.store.list_tasks("g") if t.state == TaskState.DONE]


def test_run_only_runs_the_named_tasks_and_does_not_measure(fast_tmp: Path) -> None:
    project = four(fast_tmp)
    proc = cli(project, "run", "--only", "2", "4")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert done_ids(project) == [2, 4]
    assert [r.phase for r in project.store.runs(generation="g")].count("measure") == 1


async def test_skip_and_from(fast_tmp: Path) -> None:
    project = await four_scripted(fast_tmp)
    await Engine(project).run(cycles=1, selection=Selection(start=2, skip=frozenset({3})))
    assert done_ids(project) == [2, 4]
    await Engine(project).run(cycles=1, selection=Selection(skip=frozenset({3})))
    assert done_ids(project) == [1, 2, 4]


def test_an_unknown_task_id_is_refused_before_anything_runs(fast_tmp: Path) -> None:
    project = four(fast_tmp)
    proc = cli(project, "run", "--only", "2", "--skip", "99")
    assert proc.returncode == 2 and "no task #99 in this generation" in proc.stderr
    assert done_ids(project) == []


def test_revert_refuses_when_later_tasks_build_on_it_then_reverts_a_leaf(
    fast_tmp: Path,
) -> None:
    project = make_project(
        fast_tmp,
        [
            task("Base", files={"base.py": "B = 1\n"}),
            task("On top", [0], files={"top.py": "from base import B\n"}),
            task("Alone", files={"alone.py": "A = 1\n"}),
        ],
    )
    gen = start_generation(project, "g")
    assert cli(project, "run").returncode == 0
    ids = {t.title: t.id for t in project.store.list_tasks("g")}
    base, top, alone = ids["Base"], ids["On top"], ids["Alone"]
    head = project.git.rev_parse("HEAD")

    proc = cli(project, "task", "revert", str(base))
    assert proc.returncode == 2
    assert f"later tasks build on it: #{top} On top (done)" in proc.stderr
    assert project.git.rev_parse("HEAD") == head

    proc = cli(project, "task", "revert", str(top))
    assert proc.returncode == 0, proc.stderr
    assert not (project.root / "top.py").exists() and (project.root / "base.py").exists()
    reverted = project.store.get_task(top)
    assert reverted.state == TaskState.CANCELLED and reverted.reason.startswith("reverted by")
    commits = project.git.log(f"{gen.start_commit}..{gen.branch}")
    assert set(landed_tasks(commits)) == {base, alone}

    proc = cli(project, "task", "revert", str(alone), "--retry")
    assert proc.returncode == 0 and "runs again" in proc.stdout
    assert project.store.get_task(alone).state == TaskState.READY
    assert cli(project, "run").returncode == 0
    assert (project.root / "alone.py").exists()
    assert project.store.get_task(alone).state == TaskState.DONE

    proc = cli(project, "task", "revert", str(top))
    assert proc.returncode == 2 and "not merged" in proc.stderr
