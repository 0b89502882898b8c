"""A task's own cluster resources (``resources:`` in a proposal or a plan file): names to
positive numbers, anything else refused with a message naming the task and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoemaker.config import ConfigError, load_config
from shoemaker.config.cluster import task_resources
from shoemaker.engine.proposals import ProposalError, check_proposals


def test_a_proposal_carries_its_resources_and_a_bad_one_is_refused() -> None:
    (good,) = check_proposals([{"title": "T", "resources": {"gpu": 1}}], "p.json").proposals
    assert good.resources == {"gpu": 1.0} and good.extras == {"resources": {"gpu": 1.0}}
    (plain,) = check_proposals([{"title": "U"}], "p.json").proposals
    assert plain.extras == {}
    bad = [
        ({"gpu": 0}, "resources: gpu must be a positive number, got 0"),
        ({"gpu": -1}, "resources: gpu must be a positive number, got -1"),
        ({"gpu": True}, "resources: gpu must be a positive number, got True"),
        ({"gpu": "one"}, "resources: gpu must be a positive number, got 'one'"),
        ({"gpu": float("nan")}, "resources: gpu must be a positive number, got nan"),
        ({1: 1}, "resources: a name must be text, got 1"),
        (["gpu"], "resources must map names to positive numbers, e.g. {gpu: 1}; got ['gpu']"),
    ]
    for value, said in bad:
        with pytest.raises(ProposalError) as refused:
            check_proposals([{"title": "Train", "resources": value}], "p.json")
        message = str(refused.value)
        assert message == f"p.json: task 0 ('Train'): {said}", message
        assert "\n" not in message


def test_plan_files_carry_a_task_s_resources_and_a_bad_one_is_a_problem(tmp_path: Path) -> None:
    from shoemaker.sources import beads, epics

    issues = tmp_path / "issues.jsonl"
    issues.write_text(
        json.dumps({"id": "bd-1", "title": "A", "status": "open", "resources": {"gpu": 2}})
        + "\n"
        + json.dumps({"id": "bd-2", "title": "B", "status": "open", "resources": {"gpu": 0}})
        + "\n"
    )
    parsed = beads.parse(tmp_path, issues)
    assert parsed.tasks[0].extras["resources"] == {"gpu": 2.0}
    assert [str(p) for p in parsed.problems] == [
        "issues.jsonl:2: issue bd-2: resources: gpu must be a positive number, got 0"
    ]
    epic = tmp_path / "core" / "epic-01-store.md"
    epic.parent.mkdir()
    front = "---\nstatus: open\nresources: RESOURCES\n---\n\n# Epic 01: Store\n\nKeep it.\n"
    epic.write_text(front.replace("RESOURCES", "{agent_slot: 2}"))
    (planned,) = epics.parse(tmp_path, epic.parent).tasks
    assert planned.extras["resources"] == {"agent_slot": 2.0}
    epic.write_text(front.replace("RESOURCES", "gpu"))
    (problem,) = epics.parse(tmp_path, epic.parent).problems
    assert str(problem) == (
        "core/epic-01-store.md:3: resources must map names to positive numbers, e.g. {gpu: 1}; "
        "got 'gpu'"
    )


def test_the_configured_resources_are_checked_alike(tmp_path: Path) -> None:
    assert task_resources(None) == {} and task_resources({"a": 1, "b": 0.5}) == {"a": 1, "b": 0.5}
    (tmp_path / "configuration.yaml").write_text("executor: dask\ndask: {resources: {gpu: -2}}\n")
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path)
    message = str(refused.value)
    assert "dask.resources" in message and "gpu must be a positive number, got -2" in message
