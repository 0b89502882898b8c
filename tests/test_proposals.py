"""Validating proposals: every error names the task and what is wrong."""

from __future__ import annotations

import pytest

from shoemaker.engine.proposals import (
    MAX_TITLE_CHARS,
    ProposalError,
    check_proposals,
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


def test_control_characters_are_removed_and_descriptions_keep_their_lines() -> None:
    (got,) = validate_proposals(
        [{"title": "Fix\x00 the\x1b[31m\nparser\ud800", "description": "one\n\ttwo\x00\x07\r"}],
        "x",
    )
    assert got.title == "Fix the[31m parser"
    assert got.description == "one\n\ttwo"


def test_a_title_of_only_control_characters_is_refused_by_name() -> None:
    with pytest.raises(ProposalError, match=r"x: task 0 \('\\x00\\x01'\): missing title"):
        validate_proposals([{"title": "\x00\x01"}], "x")


def test_a_long_title_is_cut_with_a_notice_and_kept_whole_in_the_description() -> None:
    checked = check_proposals([{"title": "t" * 100_000, "description": "d"}], "x")
    (got,) = checked.proposals
    assert len(got.title) == MAX_TITLE_CHARS and got.title.endswith("…")
    assert got.description == "t" * 100_000 + "\n\nd"
    assert checked.notices == [
        f"x: task 0: title of 100,000 characters cut to {MAX_TITLE_CHARS} "
        "(its description keeps the whole text)"
    ]


def test_duplicates_are_dropped_and_their_dependents_follow_the_kept_task() -> None:
    raw = [
        {"index": 0, "title": "Add a"},
        {"index": 1, "title": "Add b"},
        {"index": 2, "title": "add  A", "dependency": [1]},
        {"index": 3, "title": "Use a", "dependency": [2]},
        {"index": 4, "title": "ADD B", "dependency": [0]},
        {"index": 5, "title": "Use both", "dependency": [2, 4, 0]},
        {"index": 6, "title": "Old", "dependency": 4},
        {"index": 7, "title": "Use old", "dependency": 6},
    ]
    checked = check_proposals(raw, "f", existing={"old": 41})
    kept = {p.index: p for p in checked.proposals}
    assert sorted(kept) == [0, 1, 3, 5, 7]
    assert kept[3].depends_on == (0,)
    assert kept[5].depends_on == (0, 1)
    assert (kept[7].depends_on, kept[7].depends_on_tasks) == ((), (41,))
    assert checked.notices == [
        "f: task 2 ('add A') dropped: the same title as task 0",
        "f: task 4 ('ADD B') dropped: the same title as task 1",
        "f: task 6 ('Old') dropped: the generation already has it as task #41",
    ]


def test_a_task_that_depended_on_its_own_duplicate_depends_on_nothing() -> None:
    raw = [{"index": 0, "title": "A"}, {"index": 1, "title": "a", "dependency": 0}]
    (got,) = validate_proposals(raw, "x")
    assert (got.index, got.depends_on) == (0, ())
