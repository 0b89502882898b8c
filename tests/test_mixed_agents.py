"""One generation, several agent kinds: a task names its kind (``agent:`` in a proposal or a
plan), runs with that kind's CLI and is read with that kind's parser; the runs record it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agents import CODEX, GEMINI
from conftest import REPO_ROOT
from projects import make_project, task
from shoemaker.config import load_config
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.proposals import ProposalError, check_proposals
from shoemaker.engine.task_detail import load_task_detail
from shoemaker.mocks.gemini import MockGemini, mock_gemini, text, write_file
from shoemaker.mocks.gemini import Turn as GeminiTurn
from shoemaker.mocks.responses import MockResponses, Turn, add_file, message, mock_responses
from shoemaker.model import TaskState, Usage
from shoemaker.sources.model import agent_kind
from shoemaker.tui.why_text import agent_of

MODEL = "gpt-5.5"
GEMINI_MODEL = "gemini-2.5-flash"


@pytest.fixture
def api() -> Any:
    if not CODEX.exists():
        pytest.fail(f"the codex CLI is not installed at {CODEX}: run ./dev test, which installs it")
    with mock_responses() as served:
        yield served


async def test_a_generation_runs_claude_for_one_task_and_codex_for_another(
    fast_tmp: Path, api: MockResponses
) -> None:
    home = fast_tmp / "home"
    home.mkdir()
    codex = {
        "command": str(CODEX),
        "model": MODEL,
        "env": {"OPENAI_BASE_URL": api.url, "OPENAI_API_KEY": "sk-test-0000", "HOME": str(home)},
        "max_time_sec": 120,
        "idle_timeout_sec": 60,
    }
    by_claude = task("Add a", files={"a.py": "A = 1\n"})
    by_codex = {**task("Add hello", [0]), "agent": "codex"}
    project = make_project(
        fast_tmp,
        [by_claude, by_codex],
        agents={"codex": codex},
        prices={MODEL: {"input": 1.25, "output": 10.0, "cache_read": 0.125}},
    )
    assert project.config.agent.kind == "claude"  # the rehearsal agent speaks claude's stream
    start_generation(project, "g")
    api.script(Turn([add_file("hello.py", "HELLO = 1")]), Turn([message("Wrote hello.py.")]))
    report = await Engine(project).run(cycles=3)
    assert (report.merged, report.failed) == (2, 0)
    tasks = {t.title: t for t in project.store.list_tasks("g")}
    assert tasks["Add hello"].extras.get("agent") == "codex"
    assert "agent" not in tasks["Add a"].extras
    for t in tasks.values():
        assert t.state == TaskState.DONE, (t.title, t.reason)
    assert (project.root / "a.py").read_text() == "A = 1\n"
    assert (project.root / "hello.py").read_text() == "HELLO = 1\n"
    (claude_run,) = project.store.runs(task_id=tasks["Add a"].id)
    (codex_run,) = project.store.runs(task_id=tasks["Add hello"].id)
    assert claude_run.agent_kind == "claude" and claude_run.argv[1:3] == [
        "-m",
        "shoemaker.agents.rehearsal",
    ]
    assert codex_run.agent_kind == "codex" and codex_run.model == MODEL
    assert codex_run.argv[0] == str(CODEX) and codex_run.argv[1:3] == ["exec", "--json"]
    # Each run was read with its own kind's parser: codex's tokens, and its log condensed.
    assert codex_run.ok and codex_run.usage == Usage(2000, 80, 0, 400)
    assert claude_run.ok and claude_run.usage.output_tokens > 0
    log = load_task_detail(project, tasks["Add hello"].id).log
    assert "[edit: add hello.py]" in log
    assert agent_of(codex_run) == f"codex {MODEL}"
    assert agent_of(claude_run).startswith("claude")
    # Only codex's task went to the OpenAI mock.
    assert all("Add hello" in json.dumps(r["input"]) for r in api.requests)


@pytest.fixture
def gemini_api() -> Any:
    if not GEMINI.exists():
        pytest.fail(f"the gemini CLI is not installed at {GEMINI}: run ./dev test")
    with mock_gemini() as served:
        yield served


async def test_one_generation_runs_claude_codex_and_gemini_each_for_its_own_task(
    fast_tmp: Path, api: MockResponses, gemini_api: MockGemini
) -> None:
    home = fast_tmp / "home"
    home.mkdir()
    limits = {"max_time_sec": 120, "idle_timeout_sec": 60}
    codex = {
        "command": str(CODEX),
        "model": MODEL,
        "env": {"OPENAI_BASE_URL": api.url, "OPENAI_API_KEY": "sk-test-0000", "HOME": str(home)},
        **limits,
    }
    gemini = {
        "command": str(GEMINI),
        "model": GEMINI_MODEL,
        "env": {
            "GOOGLE_GEMINI_BASE_URL": gemini_api.url,
            "GEMINI_API_KEY": "AIza-test-0000",
            "HOME": str(home),
        },
        **limits,
    }
    project = make_project(
        fast_tmp,
        [
            task("Add a", files={"a.py": "A = 1\n"}),
            {**task("Add hello", [0]), "agent": "codex"},
            {**task("Add greet", [0]), "agent": "gemini"},
        ],
        agents={"codex": codex, "gemini": gemini},
        prices={
            MODEL: {"input": 1.25, "output": 10.0, "cache_read": 0.125},
            GEMINI_MODEL: {"input": 0.3, "output": 2.5, "cache_read": 0.075},
        },
    )
    start_generation(project, "g")
    api.script(Turn([add_file("hello.py", "HELLO = 1")]), Turn([message("Wrote hello.py.")]))
    gemini_api.script(
        GeminiTurn([write_file("greet.py", "GREET = 1\n")]), GeminiTurn([text("Wrote greet.py.")])
    )
    report = await Engine(project).run(cycles=4)
    assert (report.merged, report.failed) == (3, 0)
    tasks = {t.title: t for t in project.store.list_tasks("g")}
    for t in tasks.values():
        assert t.state == TaskState.DONE, (t.title, t.reason)
    assert (project.root / "greet.py").read_text() == "GREET = 1\n"
    assert (project.root / "hello.py").read_text() == "HELLO = 1\n"
    (gemini_run,) = project.store.runs(task_id=tasks["Add greet"].id)
    (codex_run,) = project.store.runs(task_id=tasks["Add hello"].id)
    (claude_run,) = project.store.runs(task_id=tasks["Add a"].id)
    assert (claude_run.agent_kind, codex_run.agent_kind) == ("claude", "codex")
    assert gemini_run.agent_kind == "gemini" and gemini_run.model == GEMINI_MODEL
    assert gemini_run.argv[0] == str(GEMINI)
    # Read with gemini's parser and priced at its own model.
    assert gemini_run.ok and gemini_run.usage == Usage(2000, 80, 0, 400)
    price = project.config.price(GEMINI_MODEL)[1]
    assert gemini_run.cost_usd == pytest.approx(price.cost(gemini_run.usage))
    assert "[write_file: greet.py]" in load_task_detail(project, tasks["Add greet"].id).log
    assert agent_of(gemini_run) == f"gemini {GEMINI_MODEL}"
    # Each mock was asked about its own task only.
    assert all("Add greet" in json.dumps(r["contents"]) for r in gemini_api.requests)
    assert all("Add hello" in json.dumps(r["input"]) for r in api.requests)


def test_a_proposal_or_a_plan_naming_an_unknown_kind_is_refused() -> None:
    good = check_proposals([{"title": "T", "agent": "gemini"}], "p.json").proposals
    assert good[0].agent == "gemini"
    with pytest.raises(ProposalError, match=r"p.json: task 0 .*agent must be one of claude, "):
        check_proposals([{"title": "T", "agent": "cursor"}], "p.json")
    assert agent_kind(None) is None and agent_kind("codex") == "codex"
    with pytest.raises(ValueError, match="agent 'aider': use one of claude, codex, gemini"):
        agent_kind("aider")


def test_agents_settings_take_their_kind_from_their_key(tmp_path: Path) -> None:
    (tmp_path / "configuration.yaml").write_text(
        "agent: {command: shoemaker-rehearsal, env: {X: '1'}, max_time_sec: 77}\n"
        "agents:\n  codex: {model: gpt-5.5}\n"
    )
    config = load_config(tmp_path)
    codex = config.agent_for("codex")
    assert codex.kind == "codex" and codex.command == "codex" and codex.model == "gpt-5.5"
    assert config.agent_for(None) is config.agent is config.agent_for("claude")
    # A kind not listed: agent's settings, that kind's command and args, its default model.
    gemini = config.agent_for("gemini")
    assert (gemini.command, gemini.args[:2], gemini.model) == ("gemini", ["-p", ""], "")
    assert gemini.env == {"X": "1"} and gemini.max_time_sec == 77


def test_plan_files_name_a_task_s_agent_kind_and_a_wrong_one_is_a_problem(tmp_path: Path) -> None:
    from shoemaker.sources import beads, epics

    issues = tmp_path / "issues.jsonl"
    issues.write_text(
        json.dumps({"id": "bd-1", "title": "A", "status": "open", "agent": "gemini"})
        + "\n"
        + json.dumps({"id": "bd-2", "title": "B", "status": "open", "agent": "cursor"})
        + "\n"
    )
    parsed = beads.parse(tmp_path, issues)
    assert parsed.tasks[0].extras["agent"] == "gemini"
    assert [str(p) for p in parsed.problems] == [
        "issues.jsonl:2: issue bd-2: agent 'cursor': use one of claude, codex, gemini"
    ]
    epic = tmp_path / "core" / "epic-01-store.md"
    epic.parent.mkdir()
    epic.write_text("---\nstatus: open\nagent: codex\n---\n\n# Epic 01: Store\n\nKeep it.\n")
    (planned,) = epics.parse(tmp_path, epic.parent).tasks
    assert planned.extras["agent"] == "codex"
    epic.write_text("---\nstatus: open\nagent: amp\n---\n\n# Epic 01: Store\n\nKeep it.\n")
    (problem,) = epics.parse(tmp_path, epic.parent).problems
    assert str(problem) == "core/epic-01-store.md:3: agent 'amp': use one of claude, codex, gemini"


def test_doctor_checks_each_kind_tasks_may_name(fast_tmp: Path) -> None:
    from projects import cli

    home = fast_tmp / "home"
    home.mkdir()
    agents = {"codex": {"command": str(CODEX), "env": {"HOME": str(home)}}}
    project = make_project(fast_tmp, [], agents=agents)
    env = {"OPENAI_API_KEY": "", "CODEX_API_KEY": "", "COLUMNS": "300"}
    proc = cli(project, "doctor", env=env)
    assert proc.returncode == 1
    assert f"✓ agent CLI (codex): {CODEX}: codex-cli 0.171.0" in proc.stdout
    assert "✗ credentials (codex): none of OPENAI_API_KEY, CODEX_API_KEY is set" in proc.stdout
    assert "✓ credentials: the rehearsal agent needs none" in proc.stdout


def test_a_phase_file_names_its_agent_kind_among_its_fields(tmp_path: Path) -> None:
    import shutil

    from shoemaker.sources import phases

    plans = tmp_path / "plans"
    shutil.copytree(REPO_ROOT / "tests" / "fixtures" / "plans" / "phases", plans)
    setup = plans / "phase1-setup.md"
    setup.write_text(
        setup.read_text().replace("**Depends On:** N/A", "**Agent:** gemini\n**Depends On:** N/A")
    )
    parsed = phases.parse(tmp_path, plans / "master-plan.md")
    assert parsed.problems == []
    assert [t.extras.get("agent") for t in parsed.tasks][:2] == ["gemini", None]
    setup.write_text(setup.read_text().replace("**Agent:** gemini", "**Agent:** opencode"))
    (problem,) = phases.parse(tmp_path, plans / "master-plan.md").problems
    assert (
        str(problem)
        == "plans/phase1-setup.md:5: agent 'opencode': use one of claude, codex, gemini"
    )
