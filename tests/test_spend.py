"""Spend is never undercounted: default prices, every attempt in the trailers, budget pauses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from projects import check, cli, make_project, task
from shoemaker.config import CLI_DEFAULT_MODEL, Config, ModelPrice
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.model import TaskState
from shoemaker.store import NewTask


def test_default_prices_are_the_cli_default_models() -> None:
    config = Config()
    assert config.price("claude-opus-4-8[1m]") == (
        "default",
        ModelPrice(input=5, output=25, cache_read=0.5, cache_write=6.25),
    )
    assert config.priced_model() == CLI_DEFAULT_MODEL == "claude-opus-4-8"
    # A model's own entry is found with or without the CLI's context-window suffix.
    own = Config(
        prices={"default": ModelPrice(input=1, output=1), "m": ModelPrice(input=2, output=3)}
    )
    assert own.price("m[1m]") == ("m", ModelPrice(input=2, output=3))


def test_estimate_names_the_model_it_priced(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [])
    start_generation(project, "g")
    project.store.add_tasks("g", [NewTask("Add a", "Add a.py.")], 1, "test")
    data = json.loads(cli(project, "estimate", "--json").stdout)
    assert data["model"] == "claude-opus-4-8"
    assert any(
        "prices of 'default' for the model claude-opus-4-8: $5 in / $25 out" in line
        for line in data["assumptions"]
    )
    (only,) = data["tasks"]
    assert only["usd"] == pytest.approx(
        (only["input_tokens"] * 5 + only["output_tokens"] * 25) / 1_000_000
    )
    proc = cli(project, "estimate")
    assert proc.returncode == 0 and "claude-opus-4-8" in proc.stdout


def test_a_task_of_another_kind_is_estimated_at_its_own_models_price(fast_tmp: Path) -> None:
    codex = {"command": "codex", "model": "gpt-5.5"}
    project = make_project(
        fast_tmp,
        [],
        agents={"codex": codex},
        prices={"default": {"input": 5, "output": 25}, "gpt-5.5": {"input": 1, "output": 10}},
    )
    start_generation(project, "g")
    project.store.add_tasks(
        "g",
        [NewTask("Add a", "Add a.py."), NewTask("Add b", "Add b.py.", extras={"agent": "codex"})],
        1,
        "test",
    )
    data = json.loads(cli(project, "estimate", "--json").stdout)
    by_title = {t["title"]: t for t in data["tasks"]}
    claude, codex_task = by_title["Add a"], by_title["Add b"]
    assert claude["usd"] == pytest.approx(
        (claude["input_tokens"] * 5 + claude["output_tokens"] * 25) / 1_000_000
    )
    assert codex_task["usd"] == pytest.approx(
        (codex_task["input_tokens"] * 1 + codex_task["output_tokens"] * 10) / 1_000_000
    )
    assert any(
        "prices of 'gpt-5.5' for the model gpt-5.5: $1 in / $10 out" in line
        for line in data["assumptions"]
    )


async def test_a_tasks_trailers_sum_every_attempt(fast_tmp: Path) -> None:
    project = make_project(
        fast_tmp,
        [
            task(
                "Fix it",
                files={"ok.txt": "no\n"},
                cost_usd=0.25,
                on_attempt={2: {"files": {"ok.txt": "yes\n"}, "cost_usd": 0.5}},
            )
        ],
        gates=[check("check", "import sys; sys.exit(open('ok.txt').read() != 'yes\\n')")],
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    (t,) = project.store.list_tasks("g")
    assert t.state == TaskState.DONE and t.attempts == 2
    runs = project.store.runs(task_id=t.id)
    assert len(runs) == 2 and [r.cost_usd for r in runs] == [0.25, 0.5]
    (commit,) = project.git.log(f"{project.store.get_generation('g').start_commit}..generation-g")
    trailers = commit.trailers
    assert trailers["Shoemaker-Cost-USD"] == "0.750000"
    assert trailers["Shoemaker-Runs"] == "2" and trailers["Shoemaker-Run"] == str(runs[1].id)
    for name, field in (
        ("Input", "input_tokens"),
        ("Output", "output_tokens"),
        ("Cache-Read", "cache_read_input_tokens"),
        ("Cache-Creation", "cache_creation_input_tokens"),
    ):
        assert trailers[f"Shoemaker-Tokens-{name}"] == str(
            sum(getattr(r.usage, field) for r in runs)
        )
    assert int(trailers["Shoemaker-Tokens-Input"]) > runs[1].usage.input_tokens
    # The history file keeps each attempt, and the same total.
    history = yaml.safe_load((project.history_dir / "g" / f"task-{t.id:04d}.yaml").read_text())
    assert [r["cost_usd"] for r in history["runs"]] == [0.25, 0.5]
    assert history["total"]["cost_usd"] == pytest.approx(0.75)
    assert history["total"]["tokens"]["input"] == int(trailers["Shoemaker-Tokens-Input"])


def test_a_run_a_budget_stops_exits_3_and_says_why_the_generation_is_paused(
    fast_tmp: Path,
) -> None:
    tasks = [task(n, files={f"{n}.py": "X = 1\n"}, cost_usd=0.05) for n in "abc"]
    project = make_project(fast_tmp, tasks, budgets={"generation": {"usd": 0.08}})
    start_generation(project, "g")
    proc = cli(project, "run", "--cycles", "3")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    why = "paused: generation budget: $0.1"
    assert project.store.get_generation("g").reason.startswith(why)
    assert project.store.get_generation("g").reason.endswith("of $0.0800 reached")
    (row,) = json.loads(cli(project, "list", "--json").stdout)
    assert row["state"] == "paused" and row["reason"].startswith(why)
    wide = {"COLUMNS": "200"}
    assert why in cli(project, "list", env=wide).stdout
    assert f"generation g — {why}" in cli(project, "tasks", env=wide).stdout
    # Run again with the budget still crossed: nothing starts, and the exit code says why.
    runs = len(project.store.runs(generation="g"))
    assert cli(project, "resume").returncode == 3
    assert len(project.store.runs(generation="g")) == runs
    # A run that ends for another reason exits as before.
    unlimited = make_project(fast_tmp / "other", [task("a", files={"a.py": "A = 1\n"})])
    start_generation(unlimited, "g")
    assert cli(unlimited, "run").returncode == 0


def test_help_lists_the_exit_codes() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "shoemaker", "--help"], capture_output=True, text=True, timeout=60
    )
    assert "3 a budget paused the generation" in " ".join(proc.stdout.split())
