"""What a running agent spent so far: the engine reports it from the parser that reads the
agent's lines; the dashboard's reader takes that report, and reads the transcript only for a
run this process does not run."""

from __future__ import annotations

from pathlib import Path

from projects import make_project, task
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.views import LiveUsage, SoFar
from shoemaker.events import AgentOutput, Event
from shoemaker.model import Usage


async def test_the_engine_reports_a_running_agents_spend_as_its_transcript_says(
    fast_tmp: Path,
) -> None:
    project = make_project(fast_tmp, [task("A", files={"a.py": "a = 1\n"})])
    start_generation(project, "g")
    compared: list[tuple[Usage | None, Usage | None]] = []

    def compare(event: Event) -> None:
        # Heard as the batch is published: its lines are in the transcript, no later ones.
        if not isinstance(event, AgentOutput) or event.task_id is None:
            return
        run = project.store.get_run(event.run_id)
        _, reported = project.spent_so_far[event.run_id]
        on_disk = LiveUsage(project.runs_dir, project.config).read([run]).get(event.task_id)
        compared.append((reported, on_disk.usage if on_disk else None))

    project.bus.add_listener(compare)
    await Engine(project).run(cycles=1)
    assert compared and all(reported == on_disk for reported, on_disk in compared)
    assert any(reported is not None and reported.total > 0 for reported, _ in compared)
    assert project.spent_so_far == {}  # every run ended: nothing live is left


async def test_the_reader_takes_the_engines_report_over_the_transcript(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [task("A", files={"a.py": "a = 1\n"})])
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    (run,) = [r for r in project.store.runs(generation="g") if r.task_id is not None]
    assert run.task_id is not None
    # The run has ended: its transcript left the runs directory, nothing is there to read.
    assert not (project.runs_dir / f"{run.id}.jsonl").exists()
    assert LiveUsage(project.runs_dir, project.config).read([run]) == {}
    reported: dict[int, tuple[str | None, Usage | None]] = {
        run.id: ("claude-sonnet-4-5", Usage(400, 90))
    }
    _, price = project.config.price("claude-sonnet-4-5")
    live = LiveUsage(project.runs_dir, project.config, reported).read([run])
    assert live == {run.task_id: SoFar(Usage(400, 90), price.cost(Usage(400, 90)))}
    # A run reported without usage yet (its first lines named none) shows nothing so far.
    reported[run.id] = ("claude-sonnet-4-5", None)
    assert LiveUsage(project.runs_dir, project.config, reported).read([run]) == {}
