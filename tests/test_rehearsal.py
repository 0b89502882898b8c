"""The rehearsal agent as a real executable: directives, outcomes, CLI-like behaviour."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from agents import REHEARSAL, STREAM_ARGS, directive, stitch_prompt
from shoemaker.agents.rehearsal.emitter import new_uuid

MEASURE = "<!-- shoemaker:measure output=out.json max=10 -->\n"


def act(
    cwd: Path,
    prompt: str,
    *extra: str,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
) -> tuple[int, list[dict[str, Any]], str]:
    proc = subprocess.run(
        [*REHEARSAL, *(STREAM_ARGS if args is None else args), *extra],
        input=prompt,
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "IS_SANDBOX": "1", **(env or {})},
        timeout=60,
    )
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    return proc.returncode, lines, proc.stderr


def kinds(lines: list[dict[str, Any]]) -> list[str]:
    return [f"{x['type']}/{x['subtype']}" if "subtype" in x else x["type"] for x in lines]


def test_stitch_files_append_delete_run(fast_tmp: Path) -> None:
    (fast_tmp / "old.txt").write_text("bye")
    (fast_tmp / "log.txt").write_text("a\n")
    prompt = stitch_prompt(
        files={"pkg/new.py": "x = 1\n"},
        append={"log.txt": "b\n"},
        delete=["old.txt"],
        run=["python -c 'print(40 + 2)'", "python -c 'raise SystemExit(3)'"],
        tokens={"input": 100, "output": 20, "cache_read": 5, "cache_creation": 7},
        cost_usd=0.5,
        text="All done.",
    )
    code, lines, _ = act(fast_tmp, prompt, "--model", "m1")
    assert code == 0
    assert (fast_tmp / "pkg/new.py").read_text() == "x = 1\n"
    assert (fast_tmp / "log.txt").read_text() == "a\nb\n"
    assert not (fast_tmp / "old.txt").exists()
    assert lines[0]["subtype"] == "init" and lines[0]["model"] == "m1"
    tools = [
        b
        for x in lines
        if x["type"] == "assistant"
        for b in x["message"]["content"]
        if b["type"] == "tool_use"
    ]
    assert [t["name"] for t in tools] == ["Write", "Edit", "Bash", "Bash", "Bash"]
    results = {
        b["tool_use_id"]: b for x in lines if x["type"] == "user" for b in x["message"]["content"]
    }
    bash_ok, bash_fail = tools[3], tools[4]
    assert results[bash_ok["id"]]["content"].strip() == "42"
    assert results[bash_fail["id"]]["is_error"] is True
    final = lines[-1]
    assert (
        final["type"] == "result" and final["is_error"] is False and final["result"] == "All done."
    )
    assert final["usage"]["input_tokens"] == 100 and final["total_cost_usd"] == 0.5
    assert final["modelUsage"]["m1"]["cacheCreationInputTokens"] == 7
    ids = {x["message"]["id"] for x in lines if x["type"] == "assistant"}
    assert final["num_turns"] == len(ids)


@pytest.mark.parametrize(
    ("outcome", "code", "has_result"),
    [
        ("success", 0, True),
        ("crash", 1, False),
        ("max_turns", 1, True),
        ("api_error", 1, True),
        ("sigterm", 143, False),
    ],
)
def test_outcome_exit_codes(fast_tmp: Path, outcome: str, code: int, has_result: bool) -> None:
    got, lines, stderr = act(fast_tmp, stitch_prompt(outcome=outcome, files={"a": "1", "b": "2"}))
    assert got == code
    assert (lines[-1]["type"] == "result") is has_result
    if outcome == "max_turns":
        assert lines[-1]["subtype"] == "error_max_turns" and "result" not in lines[-1]
        assert lines[-1]["errors"] == ["Reached maximum number of turns (1)"]
    if outcome == "api_error":
        assert lines[-1]["subtype"] == "success" and lines[-1]["is_error"] is True
        assert lines[-1]["api_error_status"] == 529
        assert any(x.get("error") == "overloaded" for x in lines)
        assert not (fast_tmp / "a").exists()
    if outcome == "crash":
        assert "TypeError" in stderr and (fast_tmp / "a").exists() and not (fast_tmp / "b").exists()


def test_max_turns_follows_the_flag(fast_tmp: Path) -> None:
    _, lines, _ = act(fast_tmp, stitch_prompt(outcome="max_turns"), "--max-turns", "4")
    assert lines[-1]["errors"] == ["Reached maximum number of turns (4)"]


def test_malformed_prints_non_json_and_no_result(fast_tmp: Path) -> None:
    proc = subprocess.run(
        [*REHEARSAL, *STREAM_ARGS],
        input=stitch_prompt(outcome="malformed"),
        cwd=fast_tmp,
        capture_output=True,
        text=True,
        env={**os.environ, "IS_SANDBOX": "1"},
    )
    assert proc.returncode == 0
    bad = [x for x in proc.stdout.splitlines() if not x.startswith('{"type"')]
    assert len(bad) >= 3 and '"type": "result"' not in proc.stdout


def test_on_attempt_overrides(fast_tmp: Path) -> None:
    prompt = stitch_prompt(
        attempt=2,
        outcome="crash",
        files={"a": "1"},
        on_attempt={2: {"outcome": "success", "files": {"b": "2"}}},
    )
    code, _, _ = act(fast_tmp, prompt)
    assert code == 0 and (fast_tmp / "b").exists() and not (fast_tmp / "a").exists()


def test_measure_writes_proposals_remapping_dependencies(fast_tmp: Path) -> None:
    prompt = (
        MEASURE
        + "- #4 [done] Old\n"
        + directive(
            propose=[
                {"title": "Old", "description": "x"},
                {"title": "A", "description": "first", "depends_on": [0]},
                {
                    "title": "B",
                    "description": "second",
                    "depends_on": [1, 0],
                    "rehearsal": {"files": {"b.py": "b = 1\n"}},
                },
                {"title": "C", "depends_on": [9]},
            ]
        )
    )
    code, lines, _ = act(fast_tmp, prompt)
    assert code == 0
    written = json.loads((fast_tmp / "out.json").read_text())
    assert [p["title"] for p in written] == ["A", "B", "C"]
    assert [p["dependency"] for p in written] == [-1, 0, 9]
    assert "<!-- rehearsal\nfiles:\n  b.py: |\n    b = 1\n-->" in written[1]["description"]
    assert any(
        b.get("name") == "Write"
        for x in lines
        if x["type"] == "assistant"
        for b in x["message"]["content"]
    )


def test_measure_in_text_and_from_headings(fast_tmp: Path) -> None:
    _, lines, _ = act(fast_tmp, MEASURE + directive(propose_via="text", propose=[{"title": "A"}]))
    assert "```yaml" in lines[-1]["result"] and not (fast_tmp / "out.json").exists()
    prompt = (
        MEASURE + "- #1 [ready] Implement Search\n## Documents\n### docs/x.md\n"
        "## Search\n## Export\n## Sync\n## Admin\n"
    )
    act(fast_tmp, prompt)
    written = json.loads((fast_tmp / "out.json").read_text())
    assert [p["title"] for p in written] == [
        "Implement Export",
        "Implement Sync",
        "Implement Admin",
    ]
    assert [p["dependency"] for p in written] == [-1, 0, 1]


def test_without_directives_stitch_leaves_a_trace(fast_tmp: Path) -> None:
    code, _, _ = act(fast_tmp, "<!-- shoemaker:stitch task=12 attempt=1 -->\n# Task #12: Do it\n")
    assert code == 0
    assert (fast_tmp / "rehearsal/task-12.md").read_text().startswith("# Do it")


def imported(stderr: str) -> set[str]:
    """Top-level modules named by ``PYTHONPROFILEIMPORTTIME``'s report."""
    return {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_a_script_written_as_json_is_read_without_pyyaml(fast_tmp: Path) -> None:
    keys = {"files": {"a.py": "A = 1\n"}, "text": "done: yes"}
    header = "<!-- shoemaker:stitch task=1 attempt=1 -->\n# Task #1: t\n\n"
    as_json = header + f"<!-- rehearsal\n{json.dumps(keys)}\n-->\n"
    as_yaml = header + "<!-- rehearsal\nfiles:\n  a.py: |\n    A = 1\ntext: 'done: yes'\n-->\n"
    seen = {}
    for name, prompt in (("json", as_json), ("yaml", as_yaml)):
        work = fast_tmp / name
        work.mkdir()
        code, lines, stderr = act(work, prompt, env={"PYTHONPROFILEIMPORTTIME": "1"})
        assert code == 0 and lines[-1]["result"] == "done: yes"
        assert (work / "a.py").read_text() == "A = 1\n"
        seen[name] = imported(stderr)
    assert "json" in seen["json"] and "yaml" not in seen["json"]
    # Nor what a script that runs no command does not need (uuid pulls in platform), nor
    # typing, dataclasses (inspect, ast) and pathlib (urllib): half its imports when loaded.
    unneeded = {"uuid", "platform", "subprocess", "typing", "dataclasses", "inspect", "pathlib"}
    assert not unneeded & seen["json"]
    assert "yaml" in seen["yaml"]  # what is not JSON is still read as YAML


def test_the_agents_uuids_are_random_version_4_uuids() -> None:
    made = {new_uuid() for _ in range(100)}
    assert len(made) == 100
    assert all(uuid.UUID(u).version == 4 and str(uuid.UUID(u)) == u for u in made)


@pytest.mark.parametrize(
    "block",
    [
        "<!-- rehearsal\nfiles: [1, 2]\n-->",
        "<!-- rehearsal\noutcome: explode\n-->",
        "<!-- rehearsal\nfiles: {a: 1\n-->",
        "<!-- rehearsal\nmystery: 1\n-->",
        "<!-- rehearsal\nwait: [{after: 1}]\n-->",
        "<!-- rehearsal\nwait: [{after: one, for: gate}]\n-->",
    ],
)
def test_bad_directive_is_an_error_result(fast_tmp: Path, block: str) -> None:
    code, lines, _ = act(fast_tmp, block)
    assert code == 1
    assert lines[-1]["is_error"] is True and "bad directive" in lines[-1]["result"]


def test_paths_outside_the_directory_are_refused(fast_tmp: Path) -> None:
    work = fast_tmp / "work"
    work.mkdir()
    code, lines, _ = act(work, stitch_prompt(files={"../escape.txt": "x", "/tmp/abs.txt": "y"}))
    assert code == 0 and not (fast_tmp / "escape.txt").exists()
    errors = [
        b
        for x in lines
        if x["type"] == "user"
        for b in x["message"]["content"]
        if b.get("is_error")
    ]
    assert len(errors) == 2


def test_a_path_is_inside_by_its_resolved_parts_not_its_spelling(fast_tmp: Path) -> None:
    # A sibling whose name starts with the directory's, and a link out of it, are outside;
    # a path through `..` that comes back in is inside, and is shown resolved.
    work, shop = fast_tmp / "work", fast_tmp / "workshop"
    work.mkdir()
    shop.mkdir()
    (work / "link").symlink_to(shop)
    files = {"../workshop/a.txt": "x", "link/b.txt": "y", "sub/../c.txt": "z"}
    code, lines, _ = act(work, stitch_prompt(files=files))
    assert code == 0 and list(shop.iterdir()) == []
    assert (work / "c.txt").read_text() == "z"
    uses = [
        b["input"]["file_path"]
        for x in lines
        if x["type"] == "assistant"
        for b in x["message"]["content"]
        if b["type"] == "tool_use"
    ]
    assert uses == ["../workshop/a.txt", "link/b.txt", str((work / "c.txt").resolve())]


def test_cli_rules_verbose_and_root(fast_tmp: Path) -> None:
    code, _, err = act(fast_tmp, "", args=["-p", "--output-format", "stream-json"])
    assert code == 1 and "requires --verbose" in err
    if os.geteuid() == 0:
        proc = subprocess.run(
            [*REHEARSAL, *STREAM_ARGS],
            input="",
            cwd=fast_tmp,
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "IS_SANDBOX"},
        )
        assert proc.returncode == 1 and "root/sudo" in proc.stderr and proc.stdout == ""


def test_sigterm_from_outside_exits_143_without_result(fast_tmp: Path) -> None:
    proc = subprocess.Popen(
        [*REHEARSAL, *STREAM_ARGS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=fast_tmp,
        text=True,
        env={**os.environ, "IS_SANDBOX": "1"},
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write(stitch_prompt(outcome="hang"))
    proc.stdin.close()
    first = json.loads(proc.stdout.readline())  # wait for the init line, then signal
    assert first["subtype"] == "init"
    proc.send_signal(signal.SIGTERM)
    rest = proc.stdout.read()
    assert proc.wait(timeout=10) == 143 and '"result"' not in rest


def test_sigint_gives_an_interrupted_result(fast_tmp: Path) -> None:
    proc = subprocess.Popen(
        [*REHEARSAL, *STREAM_ARGS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=fast_tmp,
        text=True,
        env={**os.environ, "IS_SANDBOX": "1"},
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write(stitch_prompt(outcome="hang"))
    proc.stdin.close()
    proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    lines = [json.loads(x) for x in proc.stdout.read().splitlines()]
    assert proc.wait(timeout=10) == 0
    assert lines[-1]["subtype"] == "error_during_execution"
    assert lines[-1]["terminal_reason"] == "aborted_streaming"


def test_duration_is_spread_over_the_events(fast_tmp: Path) -> None:
    import time

    started = time.monotonic()
    code, _, _ = act(fast_tmp, stitch_prompt(files={"a": "1", "b": "2"}, duration=0.3))
    assert code == 0 and time.monotonic() - started >= 0.3
