"""codex exec --json transcripts (recorded from the real CLI against the mock by
tests/support/record_codex.py, and one written by hand with events no version printed yet)
turned into the normalised summary and condensed lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from shoemaker.agents.adapters import adapter_for
from shoemaker.agents.codex import config_toml
from shoemaker.agents.codex_stream import (
    CodexSummaryBuilder,
    condense_codex,
    summarize_codex_file,
)
from shoemaker.agents.protocol import Ended, Normalised, Raw, Said, Started, ToolCall, ToolResult
from shoemaker.agents.streamjson import parse_line, summarize_file
from shoemaker.config import AgentConfig
from shoemaker.model import Usage

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "codex"


def lines(name: str) -> list[bytes]:
    return (FIXTURES / name).read_bytes().splitlines()


def test_a_finished_turn_is_ok_with_its_session_tools_text_and_usage() -> None:
    builder = CodexSummaryBuilder("gpt-5.5")
    for line in lines("write-file.jsonl"):
        builder.feed(line)
    s = builder.summary(0)
    assert s.ok and s.ended == "result" and s.subtype == "success" and s.is_error is False
    assert s.session_id and s.session_id == s.init_session_id
    assert s.tool_uses == {"command_execution": 1, "file_change": 1}
    assert s.result_text == "Created hello.txt."
    # 3 replies of 1200 input tokens (200 cached) and 40 output: input less the cached part.
    assert s.accounted_usage() == Usage(3000, 120, 0, 600)
    assert s.reasoning_output_tokens == 10
    assert s.model == "gpt-5.5" and s.cost_usd is None and s.cost_source == "unknown"
    assert s.num_turns is None  # codex does not count them
    assert not builder.summary(1).ok  # a final line, then a failing exit: not ok


def test_a_resumed_thread_reports_its_total_and_the_run_is_charged_the_difference() -> None:
    first = CodexSummaryBuilder()
    for line in lines("write-file.jsonl"):
        first.feed(line)
    prior, reasoning = first.thread_total()
    resumed = CodexSummaryBuilder(None, prior, reasoning)
    for line in lines("resumed.jsonl"):
        resumed.feed(line)
    s = resumed.summary(0)
    assert s.session_id == first.summary().session_id
    # The resumed run's one reply: 3000 input tokens of which 2000 cached, 40 output.
    assert s.accounted_usage() == Usage(1000, 40, 0, 2000)
    assert s.reasoning_output_tokens == 0
    # Read alone, the transcript counts the earlier run too: the prior total is what fixes it.
    alone = summarize_codex_file(FIXTURES / "resumed.jsonl")
    assert alone.accounted_usage() == Usage(4000, 160, 0, 2600)


def test_a_failed_turn_is_an_error_with_its_status_and_notices_are_not() -> None:
    s = summarize_codex_file(FIXTURES / "unauthorized.jsonl")
    assert s.ended == "result" and s.subtype == "turn_failed" and s.is_error is True
    assert not s.ok and s.api_error_status == 401
    assert s.error_text.startswith("turn_failed: unexpected status 401 Unauthorized")
    assert "Reconnecting" not in s.error_text
    assert s.message_usage is None and s.input_tokens is None


def test_an_interrupted_run_has_no_final_line_and_no_usage() -> None:
    builder = CodexSummaryBuilder()
    for line in lines("interrupted.jsonl"):
        builder.feed(line)
    s = builder.summary(1)
    assert s.ended == "no_result" and s.results == 0 and not s.ok
    assert s.session_id and s.message_usage is None
    assert s.error_text == "no result line (crashed or killed)"


def test_unknown_events_and_fields_pass_through_as_raw_events() -> None:
    builder = CodexSummaryBuilder()
    events = [builder.feed(line) for line in lines("unknown-events.jsonl")]
    s = builder.summary(0)
    assert s.lines == 16 and s.bad_lines == 1
    unknown = [e for e in events if e is not None and e.type == "turn.progress"]
    assert unknown and unknown[0].data["nested"] == {"deep": [1, 2, 3]}
    assert s.ok and s.result_text == "Done."
    # Neither the non-fatal error item nor the retry notice failed the run.
    assert s.tool_uses == {"todo_list": 1, "mcp:docs/search": 1, "web_search": 1}
    assert s.accounted_usage() == Usage(400, 50, 20, 100) and s.reasoning_output_tokens == 5
    shown = [condense_codex(e, None) for e in events if e is not None]
    assert "[turn.progress]" in shown
    assert "[item image_generation]" in shown
    assert "[warning: Model metadata for `mystery` not found.]" in shown
    assert "[notice: Reconnecting... 1/5 (stream disconnected)]" in shown
    assert "[ERROR: mcp docs/search: server gone]" in shown
    assert "[web_search: shoe sizes]" in shown


def test_condensed_lines_name_the_tools_with_paths_relative_to_the_worktree() -> None:
    raw = lines("write-file.jsonl")
    edit = json.loads(raw[5])["item"]["changes"][0]["path"]
    cwd = str(Path(edit).parent)
    shown = [condense_codex(e, cwd) for e in map(parse_line, raw) if e is not None]
    assert [line for line in shown if line] == [
        f"[thread: {json.loads(raw[0])['thread_id']}]",
        "[shell: /bin/bash -lc ls]",
        "  ↳ (no output)",
        "[edit: add hello.txt]",
        "Created hello.txt.",
        "[result: success, 3,600 in (600 cached), 120 out]",
    ]


def test_the_claude_parser_reads_a_codex_transcript_as_no_result() -> None:
    # Why the kind matters: claude's parser finds no result line in codex's stream.
    assert summarize_file(FIXTURES / "write-file.jsonl").ended == "no_result"


def _transcript(*args: str) -> subprocess.CompletedProcess[str]:
    where = list(args[:2]) if args[:1] == ("-C",) else []
    return subprocess.run(
        [sys.executable, "-m", "shoemaker", *where, "transcript", *args[len(where) :]],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_transcript_json_for_codex_has_claudes_keys_and_the_cost_source() -> None:
    claude_keys = list(summarize_file(FIXTURES / "write-file.jsonl").as_json())
    proc = _transcript("--agent", "codex", "--json", str(FIXTURES / "write-file.jsonl"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert list(out) == claude_keys and claude_keys[-2:] == [
        "reasoning_output_tokens",
        "cost_source",
    ]
    assert out["ok"] is True and out["subtype"] == "success"
    assert (out["input_tokens"], out["cache_read_input_tokens"]) == (3000, 600)
    assert out["cost_usd"] is None and out["cost_source"] == "unknown"
    assert out["num_turns"] is None and out["model_usage"] is None


def test_transcript_text_for_codex() -> None:
    proc = _transcript("--agent", "codex", str(FIXTURES / "unauthorized.jsonl"))
    assert proc.returncode == 0, proc.stderr
    assert "NOT ok — turn_failed: unexpected status 401" in proc.stdout
    assert "cost:     — (unknown)" in proc.stdout


def test_transcript_of_a_file_with_no_json_for_codex_names_both_formats(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("nope\n")
    proc = _transcript("--agent", "codex", str(bad))
    assert proc.returncode == 2 and "codex exec --json" in proc.stderr


@pytest.mark.parametrize("key", ["OPENAI_API_KEY", "CODEX_API_KEY"])
def test_the_config_home_names_the_endpoint_and_the_key_variable(key: str) -> None:
    text = config_toml({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", key: "x"})
    assert 'base_url = "http://127.0.0.1:9/v1"' in text
    assert f'env_key = "{key}"' in text and "supports_websockets = false" in text
    assert "model_provider" not in config_toml({})


def test_the_codex_launch_writes_its_own_home_and_takes_the_prompt_on_stdin(
    tmp_path: Path,
) -> None:
    login = tmp_path / "user-codex"
    login.mkdir()
    (login / "auth.json").write_text('{"OPENAI_API_KEY": "sk-from-login-0000"}')
    agent = AgentConfig(kind="codex", model="gpt-5.5")
    scratch = tmp_path / "state" / "agent-homes"
    env = {"CODEX_HOME": str(login)}
    launch = adapter_for("codex").launch(agent, env, None, "Do it.", scratch)
    try:
        home = Path(launch.env["CODEX_HOME"])
        assert launch.cleanup == (home,) and home != login
        # In the project's state, named by this process: a later recovery knows whose it is.
        assert home.parent == scratch and home.name.startswith(f"codex-{os.getpid()}-")
        assert (home / "config.toml").is_file()
        assert (home / "auth.json").read_text() == (login / "auth.json").read_text()
        assert launch.argv[1:] == [
            "exec",
            "--json",
            "--dangerously-bypass-approvals-and-sandbox",
            "--skip-git-repo-check",
            "-m",
            "gpt-5.5",
        ]
        assert launch.stdin == "Do it."
    finally:
        for directory in launch.cleanup:
            import shutil

            shutil.rmtree(directory)


def test_a_codex_launch_for_a_worker_makes_nothing_here_and_the_sent_login_there(
    tmp_path: Path,
) -> None:
    person, worker = tmp_path / "person-codex", tmp_path / "worker-codex"
    for home, key in ((person, "sk-person-0000"), (worker, "sk-worker-0000")):
        home.mkdir()
        (home / "auth.json").write_text(json.dumps({"OPENAI_API_KEY": key}))
    adapter, agent = adapter_for("codex"), AgentConfig(kind="codex")
    # At home: the login to send, and a launch that makes no directory.
    sent = adapter.login_files({"CODEX_HOME": str(person)})
    assert sent == {"auth.json": (person / "auth.json").read_text()}
    here = adapter.launch(agent, {"CODEX_HOME": str(person)}, None, "Do it.", None)
    assert (here.env, here.cleanup, here.stdin) == ({}, (), "Do it.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["person-codex", "worker-codex"]
    # On the worker: its home in the attempt's directory, with the login sent (not its own).
    attempt, env = tmp_path / "attempt", {"CODEX_HOME": str(worker)}
    there = adapter.launch(agent, env, None, "Do it.", attempt, sent)
    home = Path(there.env["CODEX_HOME"])
    assert home.parent == attempt and there.cleanup == (home,)
    assert (home / "auth.json").read_text() == sent["auth.json"]
    assert (home / "auth.json").stat().st_mode & 0o777 == 0o600
    # Nothing sent: the worker's own login, if it has one.
    own = Path(adapter.launch(agent, env, None, "", attempt).env["CODEX_HOME"])
    assert (own / "auth.json").read_text() == (worker / "auth.json").read_text()
    with pytest.raises(ValueError, match="not a login file's name"):
        adapter.launch(agent, env, None, "", attempt, {"../auth.json": "{}"})


def test_kind_defaults_replace_claudes_spelled_out_defaults_but_not_a_choice() -> None:
    from shoemaker.config.agents import DEFAULT_AGENT_ARGS

    spelled = AgentConfig(kind="codex", command="claude", args=list(DEFAULT_AGENT_ARGS))
    assert spelled.command == "codex" and spelled.args[:2] == ["exec", "--json"]
    chosen = AgentConfig(kind="codex", command="/opt/codex", args=["exec", "--json"])
    assert (chosen.command, chosen.args) == ("/opt/codex", ["exec", "--json"])
    assert AgentConfig().kind == "claude" and AgentConfig().command == "claude"
    # An estimate names the model it prices; codex's default is not claude's.
    from shoemaker.config import Config

    assert Config(agent=AgentConfig(kind="codex")).priced_model() == "codex's default"
    assert Config(agent=AgentConfig(kind="codex", model="gpt-5.5")).priced_model() == "gpt-5.5"
    assert Config().priced_model() == "claude-opus-4-8"


def _kinds(meanings: list[Normalised]) -> list[str]:
    return [type(m).__name__ for m in meanings]


def test_codex_and_claude_normalise_to_the_same_shape() -> None:
    codex = adapter_for("codex")
    meanings = [
        m for e in map(parse_line, lines("write-file.jsonl")) if e for m in codex.normalise(e)
    ]
    # Each completed tool item repeats its call with the result; callers match them by id.
    assert _kinds(meanings) == [
        "Started",
        "ToolCall",
        "ToolCall",
        "ToolResult",
        "ToolCall",
        "ToolCall",
        "ToolResult",
        "Said",
        "Ended",
    ]
    shell, edit = meanings[1], meanings[4]
    assert isinstance(shell, ToolCall) and shell.name == "command_execution"
    assert shell.input == {"command": "/bin/bash -lc ls"}
    assert isinstance(edit, ToolCall) and edit.name == "file_change"
    assert edit.input["changes"][0]["kind"] == "add"
    assert meanings[3] == ToolResult(shell.id, True, "")
    assert meanings[-2:] == [Said("Created hello.txt."), Ended(True, "success")]
    failed = [
        m for e in map(parse_line, lines("unauthorized.jsonl")) if e for m in codex.normalise(e)
    ]
    assert _kinds(failed) == ["Started", *["Notice"] * 6, "Ended"]
    assert isinstance(failed[-1], Ended) and not failed[-1].ok and "401" in failed[-1].error
    unknown = [
        m for e in map(parse_line, lines("unknown-events.jsonl")) if e for m in codex.normalise(e)
    ]
    assert Raw("turn.progress") in unknown and Raw("item image_generation") in unknown
    assert ToolResult("item_2", False, "server gone") in unknown

    claude = adapter_for("claude")
    stream = [
        {"type": "system", "subtype": "init", "session_id": "s1", "model": "claude-x"},
        {
            "type": "assistant",
            "message": {
                "id": "m1",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "Write", "input": {"file_path": "a"}}
                ],
            },
        },
        {
            "type": "user",
            "message": {"content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
        },
        {
            "type": "assistant",
            "message": {"id": "m2", "content": [{"type": "text", "text": "Done."}]},
        },
        {"type": "result", "subtype": "success", "is_error": False, "result": "Done."},
        {"type": "brand_new", "x": 1},
    ]
    events = [parse_line(json.dumps(line)) for line in stream]
    said = [m for e in events if e for m in claude.normalise(e)]
    assert said == [
        Started("s1", "claude-x"),
        ToolCall("t1", "Write", {"file_path": "a"}),
        ToolResult("t1", True, "ok"),
        Said("Done."),
        Ended(True, "success"),
        Raw("brand_new"),
    ]


def test_transcript_prices_codex_tokens_at_the_configured_model(tmp_path: Path) -> None:
    (tmp_path / "configuration.yaml").write_text(
        "agent: {kind: codex, model: gpt-5.5}\n"
        "prices:\n  gpt-5.5: {input: 1.25, output: 10, cache_read: 0.125}\n"
        "  other: {input: 2, output: 8}\n"
    )
    path = str(FIXTURES / "write-file.jsonl")
    out = json.loads(_transcript("-C", str(tmp_path), "--agent", "codex", "--json", path).stdout)
    # 3000 uncached in, 600 cache read, 120 out at gpt-5.5's prices.
    assert out["cost_source"] == "priced_from_tokens"
    assert out["cost_usd"] == pytest.approx((3000 * 1.25 + 600 * 0.125 + 120 * 10) / 1e6)
    chosen = _transcript(
        "-C", str(tmp_path), "--agent", "codex", "--json", "--model", "other", path
    )
    assert json.loads(chosen.stdout)["cost_usd"] == pytest.approx((3000 * 2 + 120 * 8) / 1e6)
