"""Validating proposals: every error names the task and what is wrong."""

from __future__ import annotations

import pytest

from shoemaker.engine.proposals import (
    ProposalError,
    find_yaml_proposals,
    limit_proposals,
    parse_json_proposals,
    validate_proposals,
)


def props(*deps: object) -> list[dict[str, object]]:
    return [
        {"index": i, "title": f"t{i}", "description": "", "dependency": d}
        for i, d in enumerate(deps)
    ]


def test_dependency_forms_and_order() -> None:
    got = validate_proposals(props([1, 2], 2, -1), "x")
    assert [p.index for p in got] == [2, 1, 0]
    assert got[2].depends_on == (1, 2)


def test_cycle_names_the_tasks() -> None:
    with pytest.raises(ProposalError, match=r"dependency cycle: .*'t0'.*'t1'"):
        validate_proposals(props(1, 0), "file.json")


def test_bad_index_and_self_dependency() -> None:
    with pytest.raises(ProposalError, match=r"task 0 \('t0'\) depends on index 7"):
        validate_proposals(props(7), "x")
    with pytest.raises(ProposalError, match="depends on itself"):
        validate_proposals(props(0), "x")


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"index": 0, "description": "d"}, "task 0: missing title"),
        ({"index": 0, "title": "  "}, "missing title"),
        ({"index": 0, "title": "a", "dependency": "1"}, r"task 0 \('a'\): dependency must be"),
        ({"index": -1, "title": "a"}, "index must be a non-negative integer"),
        ("just text", "expected an object"),
    ],
)
def test_malformed_entries(item: object, message: str) -> None:
    with pytest.raises(ProposalError, match=message):
        validate_proposals([item], "x")


def test_json_and_yaml_sources() -> None:
    assert parse_json_proposals('{"tasks": [{"title": "a"}]}', "f") == [{"title": "a"}]
    with pytest.raises(ProposalError, match="expected a JSON array"):
        parse_json_proposals('"no"', "f")
    with pytest.raises(ProposalError, match="not valid JSON"):
        parse_json_proposals("[", "f")
    text = "Here:\n```yaml\n- index: 0\n  title: A\n  dependency: -1\n```\n"
    assert find_yaml_proposals(text) == [{"index": 0, "title": "A", "dependency": -1}]
    assert find_yaml_proposals("no block") is None


def test_limit_drops_dependents_of_dropped_tasks() -> None:
    proposals = validate_proposals(props(-1, -1, 1, 0), "x")
    kept, dropped = limit_proposals(proposals, 2)
    assert sorted(p.index for p in kept) == [0, 1]
    assert sorted(p.index for p in dropped) == [2, 3]
