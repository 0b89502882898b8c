"""gemini -o stream-json transcripts (recorded from the real CLI against the mock by
tests/support/record_gemini.py, with their exit codes, and one written by hand with events no
version printed yet) turned into the normalised summary and condensed lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from shoemaker.agents.adapters import adapter_for
from shoemaker.agents.gemini import GeminiAdapter
from shoemaker.agents.gemini_stream import (
    INTERRUPTED,
    GeminiSummaryBuilder,
    condense_gemini,
    exit_meaning,
    summarize_gemini_file,
)
from shoemaker.agents.protocol import (
    AgentSummary,
    Ended,
    Notice,
    Raw,
    Said,
    Started,
    ToolCall,
    ToolResult,
)
from shoemaker.agents.streamjson import parse_line, summarize_file
from shoemaker.config import AgentConfig
from shoemaker.model import Usage

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "gemini"


def recorded(name: str, model: str | None = None) -> AgentSummary:
    """The summary of a recorded run, concluded with the exit code it had."""
    builder = GeminiSummaryBuilder(model)
    for line in (FIXTURES / f"{name}.jsonl").read_bytes().splitlines():
        builder.feed(line)
    return builder.summary(int((FIXTURES / f"{name}.exit").read_text()))


def test_a_finished_run_is_ok_with_its_session_tools_joined_text_and_usage() -> None:
    s = recorded("write-file")
    assert s.ok and s.ended == "result" and s.subtype == "success" and s.is_error is False
    assert s.session_id and s.session_id == s.init_session_id
    assert s.tool_uses == {"run_shell_command": 1, "write_file": 1}
    # The reply came in two deltas.
    assert s.result_text == "Created hello.txt."
    # 3 requests of 1200 prompt tokens (200 cached) and 40 output: input less the cached part.
    assert s.accounted_usage() == Usage(3000, 120, 0, 600)
    assert s.model == "gemini-2.5-flash" and s.cost_usd is None and s.cost_source == "unknown"
    assert s.duration_ms is not None and s.exit_meaning is None
    builder = GeminiSummaryBuilder()
    for line in (FIXTURES / "write-file.jsonl").read_bytes().splitlines():
        builder.feed(line)
    assert not builder.summary(1).ok  # a result line, then a failing exit: not ok


def test_a_resumed_session_reports_its_own_run_only() -> None:
    first, resumed = recorded("write-file"), recorded("resumed")
    assert resumed.ok and resumed.session_id == first.session_id
    assert resumed.result_text == "Still there."
    # Per invocation: 3000 prompt tokens, 2000 of them cached, nothing of the first run.
    assert resumed.accounted_usage() == Usage(1000, 40, 0, 2000)


@pytest.mark.parametrize(("name", "status"), [("api-error", 400), ("unauthorized", 401)])
def test_an_api_error_is_an_error_with_its_status_and_the_exit_code_is_that_status(
    name: str, status: int
) -> None:
    s = recorded(name)
    assert s.exit_code == status % 256
    assert not s.ok and s.ended == "result" and s.subtype == "error" and s.is_error
    assert s.api_error_status == status
    assert f"mock error {status}" in s.error_text
    assert s.accounted_usage() == Usage()


def test_a_signalled_run_exits_0_without_a_result_and_is_interrupted_not_ok() -> None:
    s = recorded("interrupted")
    assert s.exit_code == 0 and s.results == 0 and s.ended == "no_result"
    assert not s.ok and s.exit_meaning == INTERRUPTED
    assert s.session_id  # the init line came


def test_exit_codes_are_named_the_cli_s_own_and_http_statuses_mod_256() -> None:
    assert (exit_meaning(41) or "").startswith("exit code 41: gemini could not authenticate")
    assert "maximum session turns" in (exit_meaning(53) or "")
    assert "trust" in (exit_meaning(55) or "")
    assert exit_meaning(130) == "exit code 130: gemini was cancelled"
    assert exit_meaning(500 % 256) == "exit code 244: the API answered HTTP 500 (see stderr)"
    assert exit_meaning(429 % 256) == "exit code 173: the API answered HTTP 429 (see stderr)"
    assert exit_meaning(3) is None and exit_meaning(-15) is None and exit_meaning(None) is None


def test_unknown_events_and_fields_pass_through_as_raw_events() -> None:
    path = FIXTURES / "unknown-events.jsonl"
    gemini = adapter_for("gemini")
    events = [parse_line(line) for line in path.read_bytes().splitlines()]
    meanings = [m for e in events if e for m in gemini.normalise(e)]
    assert meanings == [
        Started("session-unknown-0001", "auto"),
        Raw("thought"),
        Said("Let me "),
        Said("look."),
        ToolCall("read_file_1", "read_file", {"absolute_path": "/project/missing.txt"}),
        ToolResult("read_file_1", False, "File not found: /project/missing.txt"),
        Notice("Loop detection is off"),
        Raw("checkpoint"),
        Said("Done."),
        Ended(True, "success"),
    ]
    s = summarize_gemini_file(path)
    assert s.ok and s.lines == 12 and s.bad_lines == 1
    # A tool call between deltas starts a new reply: the last one is the answer.
    assert s.result_text == "Done."
    # The stream says only "auto": the model that used the most tokens names the run.
    assert s.model == "gemini-2.5-pro"
    assert s.accounted_usage() == Usage(500, 40, 0, 100)
    shown = [condense_gemini(e, "/project") for e in events if e]
    assert "[thought]" in shown and "[checkpoint]" in shown
    assert "[read_file: missing.txt]" in shown
    assert "[ERROR: File not found: /project/missing.txt]" in shown
    assert "[warning: Loop detection is off]" in shown
    # Fields no parser knows are kept on the events as printed, for the raw view and the store.
    by_type = [e for e in events if e]
    assert by_type[0].data["origin"] == "a field no version printed"
    assert by_type[4].data["extra"] == {"nested": [1, 2]}
    assert by_type[-1].data["stats"]["future_field"] == 7
    assert by_type[8].data["files"] == ["a.py"]


def test_condensed_lines_keep_delta_spaces_and_name_tools() -> None:
    events = [
        parse_line(line) for line in (FIXTURES / "write-file.jsonl").read_bytes().split(b"\n")
    ]
    shown = [condense_gemini(e, None) for e in events if e]
    assert shown[1] is None  # the prompt, echoed
    assert "[shell: ls]" in shown and "[write_file: hello.txt]" in shown
    assert shown[-3:-1] == ["Created h", "ello.txt."]  # the task log joins the deltas
    assert shown[-1] == "[result: success, 3,600 in (600 cached), 120 out]"
    resumed = [parse_line(line) for line in (FIXTURES / "resumed.jsonl").read_bytes().split(b"\n")]
    # A delta's trailing space is part of the text, kept for the join.
    assert [condense_gemini(e, None) for e in resumed if e][2:4] == ["Still ", "there."]


def test_the_claude_parser_misreads_a_gemini_transcript() -> None:
    # Why each run's kind matters: claude's parser finds a result line with no is_error and
    # no usage in it, so a successful gemini run would read as failed and free.
    s = summarize_file(FIXTURES / "write-file.jsonl")
    assert not s.ok and s.accounted_usage() == Usage()


def _transcript(*args: str) -> subprocess.CompletedProcess[str]:
    where = list(args[:2]) if args[:1] == ("-C",) else []
    return subprocess.run(
        [sys.executable, "-m", "shoemaker", *where, "transcript", *args[len(where) :]],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_transcript_json_for_gemini_has_claudes_keys_and_the_cost_source(tmp_path: Path) -> None:
    claude_keys = list(summarize_file(FIXTURES / "write-file.jsonl").as_json())
    path = str(FIXTURES / "write-file.jsonl")
    proc = _transcript("-C", str(tmp_path), "--agent", "gemini", "--json", path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert list(out) == claude_keys and claude_keys[-2:] == [
        "reasoning_output_tokens",
        "cost_source",
    ]
    assert out["ok"] is True and out["subtype"] == "success"
    assert (out["input_tokens"], out["cache_read_input_tokens"]) == (3000, 600)
    assert out["reasoning_output_tokens"] is None and out["num_turns"] is None
    # The stream names its model, but no price for it is configured: not priced.
    assert out["cost_source"] == "unknown" and out["cost_usd"] is None
    (tmp_path / "configuration.yaml").write_text(
        "prices:\n  gemini-2.5-flash: {input: 0.3, output: 2.5, cache_read: 0.075}\n"
    )
    out = json.loads(_transcript("-C", str(tmp_path), "--agent", "gemini", "--json", path).stdout)
    assert out["cost_source"] == "priced_from_tokens"
    assert out["cost_usd"] == pytest.approx((3000 * 0.3 + 600 * 0.075 + 120 * 2.5) / 1e6)
    text = _transcript("-C", str(tmp_path), "--agent", "gemini", path)
    assert "status:   ok" in text.stdout and "write_file×1" in text.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text("nope\n")
    refused = _transcript("--agent", "gemini", str(bad))
    assert refused.returncode == 2 and "gemini -o stream-json" in refused.stderr


def test_the_gemini_launch_writes_its_own_home_and_takes_the_prompt_on_stdin(
    tmp_path: Path,
) -> None:
    agent = AgentConfig(kind="gemini", model="gemini-2.5-pro")
    assert agent.command == "gemini"
    launch = GeminiAdapter().launch(agent, {}, None, "Do it.", tmp_path / "scratch")
    assert launch.argv[1:] == [
        "-p",
        "",
        "-o",
        "stream-json",
        "--yolo",
        "--skip-trust",
        "-m",
        "gemini-2.5-pro",
    ]
    assert launch.stdin == "Do it."
    (home,) = launch.cleanup
    assert home.parent == tmp_path / "scratch" and home.name.startswith("gemini-")
    assert launch.env == {"GEMINI_CLI_HOME": str(home), "GEMINI_CLI_NO_RELAUNCH": "true"}
    written = json.loads((home / ".gemini" / "settings.json").read_text())
    assert written["security"]["auth"]["selectedType"] == "gemini-api-key"
    assert written["telemetry"]["enabled"] is False
    assert written["privacy"]["usageStatisticsEnabled"] is False
    # In a sandbox the run's fresh HOME is its gemini home; Vertex AI when the env selects it.
    sandboxed = tmp_path / "home"
    inside = GeminiAdapter().launch(
        agent, {"GOOGLE_GENAI_USE_VERTEXAI": "true"}, sandboxed, "x", tmp_path / "scratch"
    )
    assert inside.cleanup == () and inside.env["GEMINI_CLI_HOME"] == str(sandboxed)
    settings = json.loads((sandboxed / ".gemini" / "settings.json").read_text())
    assert settings["security"]["auth"]["selectedType"] == "vertex-ai"
    # For a cluster's worker, which makes the home itself: nothing made here, no login sent.
    elsewhere = GeminiAdapter().launch(agent, {}, None, "Do it.", None)
    assert (elsewhere.env, elsewhere.cleanup, elsewhere.argv) == ({}, (), launch.argv)
    assert GeminiAdapter().login_files({"HOME": str(tmp_path)}) == {}
