"""The settings a command that only reads the store takes from the configuration without its
models (``config_glance``): the same values as the whole configuration, the same messages."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from projects import make_project
from shoemaker.config import Config, ConfigError, load_config
from shoemaker.config_glance import Glance, glance_config
from shoemaker.engine.generation import start_generation


def write(root: Path, settings: dict[str, object]) -> None:
    (root / "configuration.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")


def test_defaults_are_the_configurations() -> None:
    defaults = Config()
    for field in fields(Glance):
        assert getattr(Glance(), field.name) == getattr(defaults, field.name), field.name


def test_no_file_is_the_defaults(fast_tmp: Path) -> None:
    assert glance_config(fast_tmp) == Glance()


def test_values_are_the_configurations(fast_tmp: Path) -> None:
    write(
        fast_tmp,
        {
            "state_dir": "var/state",
            "secrets_dir": "keys",
            "store_wait_sec": 3,
            "generation_branch": "shoemaker/gen",
            "cycles": 2,
        },
    )
    full = load_config(fast_tmp)
    glance = glance_config(fast_tmp)
    assert glance == Glance("var/state", "keys", 3.0, "shoemaker/gen")
    for field in fields(Glance):
        assert getattr(glance, field.name) == getattr(full, field.name), field.name


@pytest.mark.parametrize(
    "settings",
    [
        {"store_wait_sec": 0},
        {"store_wait_sec": "soon"},
        {"state_dir": ["a", "b"]},
        {"generation_branch": 7},
    ],
)
def test_a_bad_value_says_what_the_configuration_says(
    fast_tmp: Path, settings: dict[str, object]
) -> None:
    write(fast_tmp, settings)
    with pytest.raises(ConfigError) as full:
        load_config(fast_tmp)
    with pytest.raises(ConfigError) as glanced:
        glance_config(fast_tmp)
    assert str(glanced.value) == str(full.value)
    assert next(iter(settings)) in str(glanced.value)


def test_a_value_only_the_models_accept_is_theirs(fast_tmp: Path) -> None:
    """What is not plain (a yes for a number) is left to the models, which decide."""
    write(fast_tmp, {"store_wait_sec": True})
    assert glance_config(fast_tmp).store_wait_sec == load_config(fast_tmp).store_wait_sec == 1


def test_a_file_that_is_no_yaml_says_what_the_configuration_says(fast_tmp: Path) -> None:
    (fast_tmp / "configuration.yaml").write_text("cycles: [1,\n", encoding="utf-8")
    with pytest.raises(ConfigError) as full:
        load_config(fast_tmp)
    with pytest.raises(ConfigError) as glanced:
        glance_config(fast_tmp)
    assert str(glanced.value) == str(full.value)


def shoemaker(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shoemaker", "-C", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_tasks_refuses_a_bad_store_setting_as_the_engine_does(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [])
    start_generation(project, "g")
    project.close()
    settings = yaml.safe_load((project.root / "configuration.yaml").read_text())
    write(project.root, {**settings, "store_wait_sec": -1})
    tasks, run = shoemaker(project.root, "tasks"), shoemaker(project.root, "run")
    assert tasks.returncode == run.returncode == 2
    assert tasks.stderr == run.stderr
    assert "store_wait_sec" in tasks.stderr and len(tasks.stderr.splitlines()) == 1


def test_tasks_leaves_the_engines_settings_to_the_engine(fast_tmp: Path) -> None:
    """A setting only the engine uses is checked when the engine starts, not by `tasks`."""
    project = make_project(fast_tmp, [])
    start_generation(project, "g")
    project.close()
    settings = yaml.safe_load((project.root / "configuration.yaml").read_text())
    write(project.root, {**settings, "cycles": 0})
    tasks, run = shoemaker(project.root, "tasks"), shoemaker(project.root, "run")
    assert tasks.returncode == 0, tasks.stderr
    assert "generation g" in tasks.stdout
    assert run.returncode == 2 and "cycles" in run.stderr
