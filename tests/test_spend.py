"""Spend is never undercounted: default prices, every attempt in the trailers, budget pauses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from projects import cli, make_project, task
from shoemaker.config import CLI_DEFAULT_MODEL, Config, ModelPrice
from shoemaker.engine.generation import start_generation
from shoemaker.store import NewTask


def test_default_prices_are_the_cli_default_models() -> None:
    config = Config()
    assert config.price("claude-opus-4-8[1m]") == (
        "default",
        ModelPrice(input=5, output=25, cache_read=0.5, cache_write=6.25),
    )
    assert config.priced_model() == CLI_DEFAULT_MODEL == "claude-opus-4-8"
    # A model's own entry is found with or without the CLI's context-window suffix.
    own = Config(prices={"default": {"input": 1, "output": 1}, "m": {"input": 2, "output": 3}})
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
