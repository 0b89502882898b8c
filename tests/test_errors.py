"""Every front door answers in one line: bad files, a broken store, refused verbs and hostile
transcripts end with ``shoemaker: <what, where, what to do>`` on stderr, a non-zero exit code
(2 for bad input) and nothing changed — never a traceback.

Each case runs the real command line in a real process against a real repository and compares
a snapshot (refs, HEAD, index and working tree, every file, the store's rows) before and after.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from projects import make_project, task
from shoemaker.cli import build_parser
from shoemaker.engine.generation import start_generation
from shoemaker.engine.proposals import ProposalError, parse_json_proposals, validate_proposals
from shoemaker.errors import (
    ECHO_LIMIT,
    LINE_LIMIT,
    BadInput,
    Failed,
    ShoemakerError,
    echo,
    one_line,
)

TABLES = ("generations", "tasks", "task_deps", "runs", "plans", "gate_results", "metrics")
# Lock files are rewritten by whoever takes the lock; they hold no state.
TRANSIENT = {"run.lock", "merge.lock", "shoemaker.db-wal", "shoemaker.db-shm"}


def shoemaker(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``shoemaker -C ROOT ARGS…`` in a real process."""
    return subprocess.run(
        [sys.executable, "-m", "shoemaker", "-C", str(root), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line(proc: subprocess.CompletedProcess[str], code: int, *names: str) -> str:
    """Exit ``code``, one line on stderr that starts with ``shoemaker:`` and names ``names``,
    no traceback anywhere."""
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    (line,) = lines
    assert line.startswith("shoemaker: "), line
    for name in names:
        assert name in line, (name, line)
    assert proc.returncode == code, (proc.returncode, line)
    return line


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
    ).stdout


def snapshot(root: Path, rows: bool = True) -> dict[str, Any]:
    """Refs, HEAD, index and working tree, a digest of every file (``.git`` aside), and with
    ``rows`` the store's rows instead of its bytes (a healthy store's file may be
    checkpointed by a read)."""
    files: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] == ".git" or path.name in TRANSIENT:
            continue
        if rows and path.name == "shoemaker.db":
            continue
        if path.is_file():
            files[str(rel)] = hashlib.sha1(path.read_bytes()).hexdigest()
        else:
            files[str(rel)] = "dir" if path.is_dir() else "other"
    shot: dict[str, Any] = {
        "refs": _git(root, "for-each-ref", "--format=%(refname) %(objectname)"),
        "head": _git(root, "symbolic-ref", "-q", "HEAD") + _git(root, "rev-parse", "-q", "HEAD"),
        "status": _git(root, "status", "--porcelain", "--untracked-files=all"),
        "files": files,
    }
    db = root / ".shoemaker" / "shoemaker.db"
    if rows and db.is_file():
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            shot["rows"] = {
                table: conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
                for table in TABLES
            }
            shot["events"] = conn.execute("SELECT count(*) FROM events").fetchone()
        conn.close()
    return shot


@pytest.fixture
def repo(fast_tmp: Path) -> Path:
    """A repository with one commit, configured for the rehearsal agent."""
    project = make_project(fast_tmp, [task("A")])
    project.close()
    return project.root


@pytest.fixture
def with_generation(fast_tmp: Path) -> Path:
    """A repository with an open generation ``g`` and its store closed (nothing in a WAL)."""
    project = make_project(fast_tmp, [task("A")])
    start_generation(project, "g")
    project.close()
    return project.root


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


# -- the error root ---------------------------------------------------------------------------


def test_every_error_class_has_the_root_and_the_exit_code_of_its_kind() -> None:
    from shoemaker.agents.rehearsal import DirectiveError
    from shoemaker.cli import CliError
    from shoemaker.config import ConfigError
    from shoemaker.demo import DemoError
    from shoemaker.engine.doctor import DoctorError
    from shoemaker.engine.measure import MeasureError
    from shoemaker.engine.project import ProjectError
    from shoemaker.engine.review import ReviewRefused
    from shoemaker.engine.stitch import EngineError
    from shoemaker.errors import GenerationError
    from shoemaker.git import GitError
    from shoemaker.resources import ResourceError
    from shoemaker.store import StoreBusy, StoreError

    bad_input = [CliError, ConfigError, ProjectError, GenerationError, DemoError, StoreError]
    bad_input += [StoreBusy, ResourceError, DirectiveError, ReviewRefused]
    failed = [EngineError, DoctorError, MeasureError, ProposalError, GitError]
    for cls in bad_input:
        assert issubclass(cls, BadInput) and cls.exit_code == 2, cls
    for kind in failed:
        assert issubclass(kind, Failed) and kind.exit_code == 1, kind
    # Code written against the old bases goes on working.
    assert issubclass(ResourceError, FileNotFoundError) and issubclass(GitError, RuntimeError)
    assert issubclass(ProposalError, ValueError) and issubclass(StoreError, RuntimeError)
    assert not issubclass(ShoemakerError, (BadInput, Failed))


def test_echo_is_short_for_huge_and_self_referencing_values() -> None:
    bomb: list[Any] = ["x" * 10_000]
    for _ in range(30):
        bomb = [bomb] * 9
    loop: list[Any] = []
    loop.append(loop)
    for value in (bomb, loop, "y" * 10_000, {"k": "v" * 10_000}):
        assert len(echo(value)) <= ECHO_LIMIT


def test_one_line_joins_lines_and_bounds_the_length() -> None:
    assert one_line(BadInput("a\n  b\n\nc")) == "a; b; c"
    assert len(one_line(Failed("x" * 100_000))) == LINE_LIMIT
    assert one_line(Failed("")) == "Failed"


# -- configuration ----------------------------------------------------------------------------

ALIAS_BOMB = "\n".join(
    ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    + ["max_parallel: *a9", ""]
)


def _random_bytes() -> bytes:
    return b"\xff" + random.Random(20261129).randbytes(4096)


@pytest.mark.parametrize(
    ("case", "make", "expect"),
    [
        ("random bytes", lambda p: _write(p, _random_bytes()), "is not UTF-8"),
        (
            "a non-UTF-8 byte in a comment",
            lambda p: _write(p, b"cycles: 1\n# caf\xe9 au lait\n"),
            "line 2: byte 0xe9 is not UTF-8",
        ),
        ("a directory", lambda p: p.mkdir(), "is not a regular file"),
        ("a YAML alias bomb", lambda p: p.write_text(ALIAS_BOMB), "YAML aliases"),
        ("a 50 MB file", lambda p: _write_sparse(p, 50_000_000), "more than a configuration"),
        (
            "a huge bad value",
            lambda p: p.write_text(f"max_parallel: {'9x' * 5000}\n"),
            "max_parallel",
        ),
        ("deep nesting", lambda p: p.write_text("cycles: " + "[" * 100_000 + "\n"), "too deeply"),
    ],
)
def test_a_configuration_that_cannot_be_used_is_refused_in_one_short_line(
    repo: Path, case: str, make: Any, expect: str
) -> None:
    config = repo / "configuration.yaml"
    if config.is_file():
        config.unlink()
    make(config)
    before = snapshot(repo)
    # `tasks` reads only the store's settings (config_glance): a file it cannot read is
    # refused there too, a bad value of a setting it does not use by the commands that do.
    readers = [] if case == "a huge bad value" else [["tasks"]]
    for command in (["start", "g"], ["list"], *readers):
        proc = shoemaker(repo, *command)
        line = assert_one_line(proc, 2, "configuration.yaml", expect)
        assert len(line) < 300, (case, line)
    assert snapshot(repo) == before


def test_init_refuses_a_configuration_that_is_a_directory(repo: Path) -> None:
    config = repo / "configuration.yaml"
    config.unlink()
    config.mkdir()
    before = snapshot(repo)
    for extra in ([], ["--force"]):
        proc = shoemaker(repo, "init", *extra)
        assert_one_line(proc, 2, str(config), "is a directory")
    assert snapshot(repo) == before


def _write_sparse(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        handle.truncate(size)


# -- the store --------------------------------------------------------------------------------


def _truncate(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])


def _garbage(db: Path) -> None:
    db.write_bytes(random.Random(7).randbytes(len(db.read_bytes())))


def _text(db: Path) -> None:
    db.write_text("this is not a database\n")


def _directory(db: Path) -> None:
    db.unlink()
    (db / "inside").mkdir(parents=True)


def _state_is_a_file(db: Path) -> None:
    state = db.parent
    for path in state.rglob("*"):
        if path.is_file():
            path.unlink()
    for path in sorted(state.rglob("*"), reverse=True):
        path.rmdir()
    state.rmdir()
    state.write_text("not a directory\n")


@pytest.mark.parametrize(
    ("case", "damage", "expect"),
    [
        ("truncated", _truncate, "is not a usable shoemaker store"),
        ("garbage", _garbage, "is not a usable shoemaker store"),
        ("not SQLite", _text, "file is not a database"),
        ("a directory", _directory, "is a directory"),
        (".shoemaker a regular file", _state_is_a_file, "is a file"),
    ],
)
def test_a_broken_store_is_refused_in_one_line_and_left_as_it_was(
    with_generation: Path, case: str, damage: Any, expect: str
) -> None:
    root = with_generation
    damage(root / ".shoemaker" / "shoemaker.db")
    before = snapshot(root, rows=False)
    for command in (["pause"], ["tasks"], ["start", "h"]):
        proc = shoemaker(root, *command)
        assert_one_line(proc, 2, ".shoemaker", expect)
    assert snapshot(root, rows=False) == before, case


def test_a_newer_schema_says_which_version_and_to_upgrade(with_generation: Path) -> None:
    db = with_generation / ".shoemaker" / "shoemaker.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = snapshot(with_generation, rows=False)
    proc = shoemaker(with_generation, "pause")
    assert_one_line(proc, 2, str(db), "schema version 99", "upgrade shoemaker")
    assert snapshot(with_generation, rows=False) == before


HOLDER = textwrap.dedent(
    """
    import sqlite3, sys
    from pathlib import Path
    from shoemaker.engine.project import Project, RunLock
    root, holds = Path(sys.argv[1]), sys.argv[2:]
    if "run" in holds:
        lock = RunLock(Project.open(root))
        assert lock.acquire()
    if "store" in holds:
        db = sqlite3.connect(root / ".shoemaker" / "shoemaker.db", isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
    print("holding", flush=True)
    sys.stdin.read()
    """
)


@contextmanager
def holding(root: Path, *locks: str) -> Iterator[int]:
    """Another process holds ``locks`` ("store": the store's write lock, "run": the run lock)
    until the block ends; yields its pid."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root), *locks],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline() == "holding\n"
        yield proc.pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


@pytest.mark.parametrize("run", [False, True])
def test_a_locked_store_says_who_holds_it_after_the_configured_wait(
    fast_tmp: Path, run: bool
) -> None:
    project = make_project(fast_tmp, [task("A")], store_wait_sec=0.5)
    start_generation(project, "g")
    project.close()
    root = project.root
    before = snapshot(root)
    with holding(root, "store", *(["run"] if run else [])) as pid:
        proc = shoemaker(root, "pause")
    who = f"shoemaker pid {pid}" if run else "another process (not a shoemaker run)"
    assert_one_line(proc, 2, "shoemaker.db: locked by", who, "0.5 s (store_wait_sec)")
    assert snapshot(root) == before


# -- the command line -------------------------------------------------------------------------


def test_review_approve_of_an_unknown_task_names_it_and_what_to_do(with_generation: Path) -> None:
    before = snapshot(with_generation)
    for verb in (["approve", "999"], ["reject", "999", "--note", "redo"]):
        proc = shoemaker(with_generation, "review", *verb)
        assert_one_line(proc, 2, "no task with id 999", "shoemaker tasks")
    assert snapshot(with_generation) == before


def test_start_in_a_repository_without_a_commit_says_to_commit_first(fast_tmp: Path) -> None:
    root = fast_tmp / "empty"
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    (root / "notes.md").write_text("not committed\n")
    # The first command sets up shoemaker's (git-excluded) state directory; start adds nothing.
    assert shoemaker(root, "list").returncode == 0
    before = snapshot(root)
    proc = shoemaker(root, "start", "g")
    assert_one_line(proc, 2, "no commit yet", "commit something first")
    assert snapshot(root) == before


def test_a_second_run_is_refused_with_exit_2_naming_the_holder(with_generation: Path) -> None:
    root = with_generation
    before = snapshot(root)
    with holding(root, "run") as pid:
        proc = shoemaker(root, "run", "--events", "none")
    assert_one_line(proc, 2, f"shoemaker pid {pid}", "is running generation g")
    assert snapshot(root) == before


def test_an_unexpected_error_is_one_line_and_a_log_file_never_a_traceback(
    fast_tmp: Path,
) -> None:
    cache = fast_tmp / "cache"
    code = (
        "import sys, shoemaker.cli as cli, shoemaker.cli.parser as parser\n"
        "def boom(args):\n"
        "    raise KeyError('something nobody expected')\n"
        "parser.cmd_tasks = boom\n"
        "sys.exit(cli.main(['tasks']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_CACHE_HOME": str(cache)},
        timeout=120,
    )
    line = assert_one_line(proc, 1, "`tasks` failed", "KeyError", "a bug in shoemaker")
    (log,) = (cache / "shoemaker" / "crashes").glob("shoemaker-crash-*.log")
    assert str(log) in line
    text = log.read_text()
    assert "Traceback" in text and "something nobody expected" in text and "tasks" in text


# -- proposals --------------------------------------------------------------------------------

PROPOSING_AGENT = textwrap.dedent(
    """
    # A measure agent that writes the bytes of PAYLOAD as its proposals file.
    import json, re, shutil, sys
    if "--version" in sys.argv:
        print("1.0 (proposing agent)")
        sys.exit(0)
    prompt = sys.stdin.read()
    output = re.search(r"shoemaker:measure output=(\\S+)", prompt).group(1)
    shutil.copyfile(sys.argv[1], output)
    usage = {"input_tokens": 10, "output_tokens": 5}
    print(json.dumps({"type": "system", "subtype": "init", "model": "m", "session_id": "s"}))
    print(json.dumps({"type": "result", "subtype": "success", "is_error": False,
                      "result": "done", "num_turns": 1, "total_cost_usd": 0.001,
                      "usage": usage, "session_id": "s"}))
    """
)

BAD_PROPOSALS = {
    "invalid UTF-8": (b'[{"title": "caf\xe9"}]', "not UTF-8"),
    "invalid JSON": (b'[{"title": "a",', "not valid JSON"),
    "a list of strings": (b'["a task", "another"]', "expected an object with a title"),
    "a dict": (b'{"title": "a"}', "expected a JSON array of tasks, got dict"),
    "a title of the wrong type": (b'[{"title": ["a", "b"]}]', "missing title"),
    "nested wrong types": (
        json.dumps([{"title": "a", "dependency": {"x": [[["deep"] * 50] * 50]}}]).encode(),
        "dependency must be",
    ),
    "nested too deeply": (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
}


@pytest.fixture
def proposing(fast_tmp: Path) -> Iterator[tuple[Path, Path]]:
    """A repository with an open generation whose agent writes ``payload`` as proposals."""
    agent = fast_tmp / "proposing_agent.py"
    agent.write_text(PROPOSING_AGENT)
    payload = fast_tmp / "payload"
    project = make_project(
        fast_tmp,
        [],
        agent={
            "command": sys.executable,
            "args": [str(agent), str(payload)],
            "env": {"ANTHROPIC_API_KEY": "sk-test-not-a-real-key"},
            "max_time_sec": 60,
            "idle_timeout_sec": 30,
        },
    )
    start_generation(project, "g")
    project.close()
    yield project.root, payload


@pytest.mark.parametrize("case", sorted(BAD_PROPOSALS))
def test_bad_proposals_fail_measure_in_one_line_and_add_no_task(
    proposing: tuple[Path, Path], case: str
) -> None:
    root, payload = proposing
    data, expect = BAD_PROPOSALS[case]
    payload.write_bytes(data)
    before = snapshot(root)
    proc = shoemaker(root, "measure", "--events", "none")
    line = assert_one_line(proc, 1, "shoemaker-proposals.json", expect)
    assert len(line) < 400
    after = snapshot(root)
    # The agent ran and was paid for: its run is recorded (and the measure call counted as a
    # cycle). No task, no ref, no file of the repository.
    assert len(after["rows"]["runs"]) == len(before["rows"]["runs"]) + 1
    for key in ("refs", "head", "status"):
        assert after[key] == before[key], key
    for table in ("tasks", "task_deps", "plans"):
        assert after["rows"][table] == before["rows"][table] == [], table
    outside = [
        {k: v for k, v in s["files"].items() if not k.startswith(".shoemaker")}
        for s in (before, after)
    ]
    assert outside[0] == outside[1]


@pytest.mark.parametrize("case", sorted(BAD_PROPOSALS))
def test_bad_proposals_raise_a_short_proposal_error(case: str) -> None:
    data, expect = BAD_PROPOSALS[case]
    with pytest.raises(ProposalError, match=expect) as err:
        validate_proposals(parse_json_proposals(data, "p.json"), "p.json")
    assert len(str(err.value)) < 300 and "\n" not in str(err.value)


def test_fenced_yaml_proposals_that_bomb_or_nest_are_ignored() -> None:
    from shoemaker.engine.proposals import find_yaml_proposals

    deep = "```yaml\n" + "- " + "[" * 100_000 + "\n```"
    assert find_yaml_proposals(deep) is None
    bomb = "```yaml\n- &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"- &{c} [{', '.join(['*' + p] * 9)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    raw = find_yaml_proposals(bomb + "```")
    assert raw is not None
    with pytest.raises(ProposalError) as err:
        validate_proposals(raw, "the final text")
    assert len(str(err.value)) < 300


# -- transcripts ------------------------------------------------------------------------------

RESULT = {
    "type": "result",
    "subtype": "success",
    "is_error": False,
    "num_turns": 1,
    "total_cost_usd": 0.5,
    "usage": {"input_tokens": 3, "output_tokens": 4},
}


def test_a_line_nested_200000_deep_is_a_bad_line(fast_tmp: Path) -> None:
    path = fast_tmp / "deep.jsonl"
    path.write_text("[" * 200_000 + "]" * 200_000 + "\n" + json.dumps(RESULT) + "\n")
    proc = shoemaker(fast_tmp, "transcript", "--json", str(path))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["lines"], summary["bad_lines"], summary["cost_usd"]) == (2, 1, 0.5)


@pytest.mark.parametrize("number", ["1e999", "-1e999", "NaN", "Infinity"])
def test_non_finite_numbers_become_null_and_count_as_bad_values(
    fast_tmp: Path, number: str
) -> None:
    path = fast_tmp / "inf.jsonl"
    line = json.dumps({**RESULT, "modelUsage": {"m": {"inputTokens": 3, "costUSD": 0.1}}})
    line = line.replace('"total_cost_usd": 0.5', f'"total_cost_usd": {number}')
    line = line.replace('"costUSD": 0.1', f'"costUSD": {number}')
    path.write_text(line + "\n")
    proc = shoemaker(fast_tmp, "transcript", "--json", str(path))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert summary["cost_usd"] is None and summary["bad_values"] == 2
    assert summary["cost_source"] == "unknown"  # no cost was reported that could be read
    assert summary["model_usage"] == {"m": {"inputTokens": 3, "costUSD": None}}
    text = shoemaker(fast_tmp, "transcript", str(path))
    assert text.returncode == 0 and "2 numbers not finite" in text.stdout, text.stderr


def test_an_invalid_utf8_line_is_a_bad_line_and_a_file_of_none_is_refused(
    fast_tmp: Path,
) -> None:
    mixed = fast_tmp / "mixed.jsonl"
    mixed.write_bytes(b'{"type": "assistant", "x": "caf\xe9"}\n' + json.dumps(RESULT).encode())
    proc = shoemaker(fast_tmp, "transcript", "--json", str(mixed))
    assert proc.returncode == 0, proc.stderr
    assert (json.loads(proc.stdout)["lines"], json.loads(proc.stdout)["bad_lines"]) == (2, 1)
    binary = fast_tmp / "binary.jsonl"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00garbage\n")
    for extra in ([], ["--json"]):
        proc = shoemaker(fast_tmp, "transcript", *extra, str(binary))
        assert_one_line(proc, 2, str(binary), "is stream-json")
        assert proc.stdout == ""


@pytest.mark.parametrize(
    ("target", "expect"), [("missing.jsonl", "no such file"), (".", "is a directory")]
)
def test_a_transcript_that_is_no_file_is_refused_in_one_line(
    fast_tmp: Path, target: str, expect: str
) -> None:
    path = fast_tmp / target
    proc = shoemaker(fast_tmp, "transcript", "--json", str(path))
    assert_one_line(proc, 2, str(path), expect)
    assert proc.stdout == ""


# -- every subcommand, hostile inputs ---------------------------------------------------------


def _subcommands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable command path of the parser, with the parser that takes its arguments."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if prefix and "func" in parser._defaults and not any(s.required for s in subs):
        yield prefix, parser
    for action in subs:
        for name, child in action.choices.items():
            yield from _subcommands(child, (*prefix, name))


def _arguments(parser: argparse.ArgumentParser, values: dict[str, str]) -> list[str]:
    """The required arguments of a command, filled from ``values`` (an id nobody has: 999)."""
    args: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.default == argparse.SUPPRESS:
            continue
        if not action.option_strings and action.nargs != "?":
            args.append(values.get(action.dest, "999"))
        elif action.option_strings and action.required:
            args += [action.option_strings[0], values.get(action.dest, "999")]
    return args


def all_commands() -> list[tuple[str, ...]]:
    """Every command path; `generation VERB` is the same code as the top-level VERB."""
    paths = [path for path, _ in _subcommands(build_parser())]
    return [p for p in paths if not (p[0] == "generation" and (p[1],) in paths)]


def test_the_walk_finds_every_command() -> None:
    paths = set(all_commands())
    assert {("review", "approve"), ("plan", "rollback"), ("task", "revert"), ("tui",)} <= paths
    assert ("generation",) not in paths and len(paths) > 20


def _garbage_config(root: Path) -> None:
    (root / "configuration.yaml").write_bytes(_random_bytes())


def _garbage_store(root: Path) -> None:
    _garbage(root / ".shoemaker" / "shoemaker.db")


def _no_repo(root: Path) -> None:
    subprocess.run(["rm", "-rf", str(root / ".git")], check=True)


def _healthy(root: Path) -> None:
    """A sound project whose ids are unknown; its agent does not exist, so nothing runs."""
    config = yaml.safe_load((root / "configuration.yaml").read_text())
    config["agent"]["command"] = "no-such-agent-xyz"
    (root / "configuration.yaml").write_text(yaml.safe_dump(config))
    identity = ["-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run(["git", "-C", str(root), *identity, "commit", "-qam", "no agent"], check=True)


EARLY = {
    "a garbage configuration": _garbage_config,
    "a garbage store": _garbage_store,
    "no repository": _no_repo,
}
# Commands that would open the dashboard, or serve it (`web`), on a sound project (walked with
# the broken ones; tests/test_web.py ends a real server).
INTERACTIVE = {("tui",), (), ("web",)}


def _run_everything(root_for: Callable[[int], Path], skip: set[tuple[str, ...]]) -> None:
    """Each command (and the bare `shoemaker`) in turn, the n-th in ``root_for(n)``; fails
    on a traceback, or on an error that is not one line."""
    parser = build_parser()
    subparsers = dict(_subcommands(parser))
    commands = [p for p in [*all_commands(), ()] if p not in skip]
    for n, path in enumerate(commands):
        root = root_for(n)
        values = {"file": str(root / "configuration.yaml"), "name": "nope", "note": "x"}
        extra = ["--prepare", str(root)] if path == ("demo",) else []  # not empty: refused
        args = [*path, *_arguments(subparsers[path], values), *extra] if path else []
        proc = shoemaker(root, *args, timeout=60)
        output = proc.stdout + proc.stderr
        assert "Traceback" not in output, (root.name, args, output)
        if proc.returncode != 0 and proc.stderr:
            lines = proc.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith("shoemaker: "), (args, proc.stderr)


def test_every_subcommand_answers_unknown_ids_without_a_traceback(with_generation: Path) -> None:
    _healthy(with_generation)

    def fresh(n: int) -> Path:  # a verb that succeeds (stop) must not spoil the next one
        root = with_generation.parent / f"copy-{n}"
        shutil.copytree(with_generation, root, symlinks=True)
        return root

    _run_everything(fresh, INTERACTIVE)


def test_every_subcommand_answers_broken_projects_without_a_traceback(fast_tmp: Path) -> None:
    """Each command meets one of the broken projects, in turn: they all fail where the
    project is opened, so a few dozen processes cover every command and every breakage."""
    template = make_project(fast_tmp / "template", [task("A")])
    start_generation(template, "g")
    template.close()
    roots = []
    for name, breakage in sorted(EARLY.items()):
        root = fast_tmp / name.replace(" ", "-")
        shutil.copytree(template.root, root, symlinks=True)
        breakage(root)
        roots.append(root)
    _run_everything(lambda n: roots[n % len(roots)], set())
