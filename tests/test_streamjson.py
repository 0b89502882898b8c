"""stream-json: every recorded fixture parses; the summary follows the last result line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO_ROOT
from shoemaker.agents.streamjson import (
    SummaryBuilder,
    condense,
    format_summary,
    parse_line,
    summarize_file,
    summarize_lines,
)
from shoemaker.model import Usage

FIXTURES = Path(
    os.environ.get("SHOEMAKER_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures" / "stream-json")
)

# Read off the files by hand: result lines, their last values, tool_use ids, line counts.
EXPECTED = {
    "charlieyou__claude-agent-sdk-gleam__basic_query.ndjson.jsonl": dict(
        ended="result",
        results=1,
        subtype="success",
        is_error=False,
        ok=True,
        cost_usd=0.1354875,
        input_tokens=10,
        output_tokens=25,
        cache_creation_input_tokens=21570,
        cache_read_input_tokens=0,
        num_turns=1,
        session_id="1d1e46f9-35c7-4834-b529-846d5bb82288",
        tool_uses={},
        lines=3,
        bad_lines=0,
    ),
    "charlieyou__claude-agent-sdk-gleam__cli2.1.4_tooluse_messages.jsonl": dict(
        ended="result",
        results=1,
        subtype="success",
        is_error=False,
        ok=True,
        cost_usd=0.24722425,
        input_tokens=18,
        output_tokens=424,
        cache_creation_input_tokens=25067,
        cache_read_input_tokens=17254,
        num_turns=2,
        session_id="40e7b02d-c0f9-4876-9010-f514d4eb0603",
        tool_uses={"Bash": 1},
        lines=4,
        bad_lines=0,
    ),
    "link-assistant__hive-mind__background-disabled.jsonl": dict(
        ended="no_result",
        results=0,
        subtype=None,
        is_error=None,
        ok=False,
        cost_usd=None,
        input_tokens=None,
        num_turns=None,
        session_id=None,
        tool_uses={"Agent": 1, "Bash": 2},
        model_usage=None,
        lines=20,
        bad_lines=0,
    ),
    "slopus__happy-cli__sample-error-edit-and-multi-edit.jsonl": dict(
        ended="result",
        results=1,
        ok=True,
        cost_usd=0.20190135,
        input_tokens=27,
        output_tokens=851,
        cache_creation_input_tokens=1499,
        cache_read_input_tokens=72909,
        num_turns=10,
        tool_uses={"Read": 1, "Edit": 1, "MultiEdit": 1},
        lines=12,
        bad_lines=0,
    ),
    "slopus__happy-cli__sample-error.jsonl": dict(
        ended="result",
        results=1,
        ok=True,
        cost_usd=0.13527619999999999,
        input_tokens=12,
        output_tokens=136,
        num_turns=4,
        tool_uses={"Bash": 1},
        lines=6,
        bad_lines=0,
    ),
}


def test_fixture_directory_is_present() -> None:
    assert FIXTURES.is_dir(), f"stream-json fixtures missing at {FIXTURES} (set SHOEMAKER_FIXTURES)"
    assert {p.name for p in FIXTURES.glob("*.jsonl")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_summary(name: str) -> None:
    summary = summarize_file(FIXTURES / name).as_json()
    for key, value in EXPECTED[name].items():
        assert summary[key] == value, key


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_fixture_line_parses_and_condenses(name: str) -> None:
    builder = SummaryBuilder()
    for line in (FIXTURES / name).read_text().splitlines():
        event = builder.feed(line)
        assert event is not None
        text = condense(event, builder.cwd)
        assert text is None or ("\n" not in text and len(text) < 260)


def test_fixture_model_usage_is_kept_and_preferred_for_accounting() -> None:
    name = "charlieyou__claude-agent-sdk-gleam__cli2.1.4_tooluse_messages.jsonl"
    summary = summarize_file(FIXTURES / name)
    assert summary.model_usage is not None
    assert summary.model_usage["claude-opus-4-5-20251101"]["inputTokens"] == 38
    assert summary.accounted_usage() == Usage(38, 765, 31159, 28775)


def result(**fields: object) -> str:
    base = {"type": "result", "subtype": "success", "is_error": False, "num_turns": 1}
    return json.dumps({**base, **fields})


def test_result_keys_in_any_order() -> None:
    line = (
        '{"duration_api_ms":5,"usage":{"input_tokens":3},"total_cost_usd":0.5,'
        '"is_error":false,"subtype":"success","type":"result","session_id":"s"}'
    )
    s = summarize_lines([line])
    assert (s.ended, s.ok, s.cost_usd, s.input_tokens, s.session_id) == (
        "result",
        True,
        0.5,
        3,
        "s",
    )


def test_last_result_wins_and_results_are_never_added() -> None:
    lines = [
        result(total_cost_usd=1.0, usage={"input_tokens": 100}),
        '{"type":"system","subtype":"init","session_id":"x"}',
        result(total_cost_usd=1.5, usage={"input_tokens": 7}, num_turns=3),
    ]
    s = summarize_lines(lines)
    assert (s.results, s.cost_usd, s.input_tokens, s.num_turns) == (2, 1.5, 7, 3)


def test_api_error_is_not_ok_even_with_subtype_success() -> None:
    s = summarize_lines([result(is_error=True, api_error_status=529, result="API Error: 529")])
    assert not s.ok and s.subtype == "success"
    assert s.error_text == "API error 529: API Error: 529"


def test_error_subtypes_carry_errors() -> None:
    line = json.dumps(
        {
            "type": "result",
            "subtype": "error_max_turns",
            "is_error": True,
            "errors": ["Reached maximum number of turns (2)"],
        }
    )
    s = summarize_lines([line])
    assert not s.ok and s.result_text is None
    assert "Reached maximum number of turns (2)" in s.error_text
    assert "[ERROR: result error_max_turns: Reached maximum" in (condense(parse_line(line)) or "")  # type: ignore[arg-type]


def test_no_result_and_exit_code() -> None:
    assert summarize_lines(['{"type":"system","subtype":"init"}']).ended == "no_result"
    assert not summarize_lines([result()], exit_code=1).ok
    assert summarize_lines([result()], exit_code=0).ok
    assert summarize_lines([result()]).ok  # a file has no exit code


def test_a_run_without_a_result_counts_each_message_once() -> None:
    # Killed before its result: 3 messages (one from a subagent), each repeated on several
    # lines with the same usage; summed by hand from the fixture.
    s = summarize_file(FIXTURES / "link-assistant__hive-mind__background-disabled.jsonl")
    assert s.results == 0 and s.input_tokens is None  # the result's fields stay unknown
    assert s.message_usage == Usage(28, 9, 18155, 31503) == s.accounted_usage()
    assert s.model == "claude-haiku-4-5-20251001"
    synthetic = json.dumps(
        {
            "type": "assistant",
            "error": "overloaded",
            "message": {"id": "m1", "model": "<synthetic>", "usage": {"input_tokens": 9}},
        }
    )
    assert summarize_lines([synthetic]).message_usage is None
    assert summarize_lines([synthetic, result()]).message_usage is None


def test_bad_lines_unknown_types_and_blank_lines() -> None:
    lines = [
        "not json",
        "[1, 2]",
        "",
        "   ",
        '{"type":"brand_new","x":1}',
        '{"type":"system","subtype":"future_thing"}',
        "{truncated",
        result(),
    ]
    s = summarize_lines(lines)
    assert (s.lines, s.bad_lines, s.ended) == (6, 3, "result")
    assert condense(parse_line('{"type":"brand_new"}')) == "[brand_new]"  # type: ignore[arg-type]
    assert condense(parse_line('{"type":"system","subtype":"future_thing"}')) == (  # type: ignore[arg-type]
        "[system/future_thing]"
    )


def tool_use(tool_id: str, name: str, tool_input: object) -> str:
    block = {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}
    return json.dumps({"type": "assistant", "message": {"id": "m", "content": [block]}})


def test_tool_uses_are_counted_once_per_id() -> None:
    lines = [
        tool_use("a", "Bash", {"command": "ls"}),
        tool_use("a", "Bash", {"command": "ls"}),
        tool_use("b", "Bash", {}),
        tool_use("c", "Agent", {"description": "x"}),
    ]
    assert summarize_lines(lines).tool_uses == {"Bash": 2, "Agent": 1}


@pytest.mark.parametrize(
    ("name", "tool_input", "expected"),
    [
        ("Read", {"file_path": "/w/src/a.py"}, "[Read: src/a.py]"),
        ("Edit", {"file_path": "/elsewhere/b.py"}, "[Edit: /elsewhere/b.py]"),
        ("Bash", {"command": "pytest -q\necho done"}, "[Bash: pytest -q]"),
        ("Task", {"description": "explore"}, "[Task: explore]"),
        ("Agent", {"description": "explore", "prompt": "p"}, "[Task: explore]"),
        ("TodoWrite", {"todos": [1, 2]}, "[TodoWrite: 2 items]"),
        ("Glob", {"pattern": "**/*.py"}, "[Glob: **/*.py]"),
    ],
)
def test_condensed_tool_uses(name: str, tool_input: object, expected: str) -> None:
    event = parse_line(tool_use("t", name, tool_input))
    assert event is not None
    assert condense(event, cwd="/w") == expected


@pytest.mark.parametrize(
    "line",
    [
        '{"type":"assistant"}',
        '{"type":"assistant","message":{"content":"plain string"}}',
        '{"type":"assistant","message":{"content":[{"type":"tool_use","input":[1,2]}]}}',
        '{"type":"assistant","message":{"content":[42, null]}}',
        '{"type":"user","message":{"content":[{"type":"tool_result","content":{"odd":1}}]}}',
        '{"type":"user","message":"nope"}',
        '{"type":"result","total_cost_usd":"free"}',
        '{"type":"system","subtype":"api_retry"}',
        '{"type":42,"subtype":[]}',
    ],
)
def test_condense_never_raises_on_odd_shapes(line: str) -> None:
    event = parse_line(line)
    assert event is not None
    condense(event)
    summarize_lines([line])


def test_error_renderings() -> None:
    synthetic = json.dumps(
        {
            "type": "assistant",
            "error": "rate_limit",
            "message": {"content": [{"type": "text", "text": "API Error: 429"}]},
        }
    )
    failed = json.dumps(
        {
            "type": "user",
            "message": {
                "content": [
                    {"type": "tool_result", "tool_use_id": "t", "is_error": True, "content": "boom"}
                ]
            },
        }
    )
    assert condense(parse_line(synthetic)) == "[ERROR: rate_limit API Error: 429]"  # type: ignore[arg-type]
    assert condense(parse_line(failed)) == "[ERROR: boom]"  # type: ignore[arg-type]


def test_a_twenty_megabyte_line_parses() -> None:
    big = "x" * (20 * 1024 * 1024)
    line = json.dumps(
        {
            "type": "user",
            "message": {"content": [{"type": "tool_result", "tool_use_id": "t", "content": big}]},
        }
    )
    s = summarize_lines([line, result()])
    assert (s.lines, s.bad_lines, s.ok) == (2, 0, True)
    assert len(condense(parse_line(line)) or "") < 200  # type: ignore[arg-type]


def test_transcript_command_json_has_exactly_the_documented_keys(tmp_path: Path) -> None:
    name = "charlieyou__claude-agent-sdk-gleam__cli2.1.4_tooluse_messages.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "shoemaker", "transcript", "--json", str(FIXTURES / name)],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(proc.stdout)
    assert list(data) == [
        "ended",
        "results",
        "subtype",
        "is_error",
        "ok",
        "cost_usd",
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "num_turns",
        "session_id",
        "tool_uses",
        "model_usage",
        "lines",
        "bad_lines",
        "bad_values",
        "reasoning_output_tokens",
        "cost_source",
    ]
    assert data["tool_uses"] == {"Bash": 1} and data["cost_usd"] == 0.24722425
    # The result line's own cost, as codex's and gemini's say where theirs comes from.
    assert data["cost_source"] == "reported" and data["reasoning_output_tokens"] is None


def test_transcript_command_text_and_missing_file(tmp_path: Path) -> None:
    name = "link-assistant__hive-mind__background-disabled.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "shoemaker", "transcript", str(FIXTURES / name)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0
    assert "no_result" in proc.stdout and "crashed or killed" in proc.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "shoemaker", "transcript", str(tmp_path / "nope.jsonl")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_format_summary_mentions_cost_and_tools() -> None:
    text = format_summary(summarize_lines([tool_use("a", "Bash", {}), result(total_cost_usd=0.25)]))
    assert "$0.250000" in text and "Bash×1" in text


def assistant(mid: str, **usage: int) -> str:
    message = {"id": mid, "model": "claude-opus-4-8", "content": [], "usage": usage}
    return json.dumps({"type": "assistant", "message": message})


def test_a_result_that_reports_nothing_after_sigint_is_charged_for_its_messages() -> None:
    # What the real CLI prints when SIGINT lands after billed replies: a last result with a
    # zero cost and zero usage.
    zero = {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0}
    lines = [
        '{"type":"system","subtype":"init","model":"claude-opus-4-8[1m]"}',
        assistant("m1", input_tokens=100, output_tokens=1, cache_read_input_tokens=50),
        assistant("m1", input_tokens=100, output_tokens=30, cache_read_input_tokens=50),
        assistant("m2", input_tokens=20, output_tokens=1, cache_creation_input_tokens=7),
        result(
            subtype="error_during_execution",
            is_error=True,
            total_cost_usd=0,
            usage=zero,
            modelUsage={},
            terminal_reason="aborted_streaming",
        ),
    ]
    s = summarize_lines(lines, exit_code=0)
    assert s.results == 1 and s.cost_usd == 0 and s.result_undercounts
    assert s.accounted_usage() == Usage(120, 31, 7, 50) == s.message_usage
    # A result that reports what was used is believed, whatever the messages said.
    honest = summarize_lines([*lines[:-1], result(total_cost_usd=0.01, usage={"input_tokens": 5})])
    assert not honest.result_undercounts and honest.accounted_usage() == Usage(5)
    # Nothing reported and nothing used: nothing to charge.
    assert not summarize_lines([result(total_cost_usd=0, usage=zero)]).result_undercounts


def test_spent_prices_an_undercounting_result_at_the_default_models_prices() -> None:
    from types import SimpleNamespace

    from shoemaker.config import Config
    from shoemaker.engine.agent_call import spent

    zero = {"input_tokens": 0, "output_tokens": 0}
    lines = [
        '{"type":"system","subtype":"init","model":"claude-opus-4-8[1m]"}',
        assistant("m1", input_tokens=1_000_000, output_tokens=1),
        result(is_error=True, total_cost_usd=0, usage=zero),
    ]
    project: Any = SimpleNamespace(config=Config())
    cost, estimated = spent(project, summarize_lines(lines))
    assert estimated and cost == pytest.approx(5 + 25 / 1_000_000)
    # A result line that says what the run cost is what it cost.
    honest = [*lines[:-1], result(total_cost_usd=2.5, usage={"input_tokens": 9})]
    assert spent(project, summarize_lines(honest)) == (2.5, False)


def test_format_summary_shows_the_messages_an_undercounting_result_left_out() -> None:
    lines = [
        assistant("m1", input_tokens=1200, output_tokens=1, cache_read_input_tokens=50),
        result(is_error=True, total_cost_usd=0, usage={"input_tokens": 0}),
    ]
    text = format_summary(summarize_lines(lines))
    assert "messages: 1,200 in, 1 out (a floor), 50 cache read, 0 cache created" in text
    assert "messages:" not in format_summary(summarize_lines([result(total_cost_usd=0.1)]))
