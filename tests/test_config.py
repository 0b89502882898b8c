"""Configuration: defaults, the commented default file, and clear errors for bad files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shoemaker.config import (
    CONFIG_FILE,
    Config,
    ConfigError,
    default_config_text,
    load_config,
    write_default_config,
)
from shoemaker.config.template import field_docs


def test_defaults_without_a_file(tmp_path: Path) -> None:
    cfg = load_config(tmp_path)
    assert cfg.agent.command == "claude"
    assert cfg.agent.args == [
        "--dangerously-skip-permissions",
        "-p",
        "--verbose",
        "--output-format",
        "stream-json",
    ]
    assert cfg.max_parallel == 1 and cfg.max_issues == 10 and cfg.cycles == 1


def test_every_field_has_a_docstring() -> None:
    from pydantic import BaseModel

    def walk(model: type[BaseModel]) -> None:
        docs = field_docs(model)
        for name, info in model.model_fields.items():
            assert docs.get(name), f"{model.__name__}.{name} has no docstring"
            ann = info.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann)

    walk(Config)


def test_default_file_round_trips_and_is_commented(tmp_path: Path) -> None:
    path = write_default_config(tmp_path)
    text = path.read_text()
    assert "# Hard limit on one agent run's wall time" in text
    assert load_config(tmp_path) == Config()
    assert yaml.safe_load(default_config_text())["agent"]["command"] == "claude"


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    write_default_config(tmp_path)
    with pytest.raises(ConfigError, match="already exists"):
        write_default_config(tmp_path)


@pytest.mark.parametrize(
    ("content", "field", "hint"),
    [
        ("max_parallel: 0\n", "max_parallel", "greater than or equal to 1"),
        ("agent:\n  idle_timeout_sec: soon\n", "agent.idle_timeout_sec", "valid number"),
        ("max_paralel: 2\n", "max_paralel", "unknown setting"),
        ("gates:\n  - name: t\n    command: []\n", "gates.0.command", "must name something"),
        ("gates:\n  - command: [pytest]\n", "gates.0.name", "required"),
        ("agent:\n  command: ''\n", "agent.command", "must name the agent"),
    ],
)
def test_invalid_file_names_file_field_and_fix(
    tmp_path: Path, content: str, field: str, hint: str
) -> None:
    (tmp_path / CONFIG_FILE).write_text(content)
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    message = str(err.value)
    assert str(tmp_path / CONFIG_FILE) in message
    assert field in message
    assert hint in message


@pytest.mark.parametrize(("written", "meant"), [("off", "off"), ("on", "agent"), ("'off'", "off")])
def test_measure_off_written_bare_is_the_word_not_a_boolean(
    tmp_path: Path, written: str, meant: str
) -> None:
    (tmp_path / CONFIG_FILE).write_text(f"measure: {written}\n")
    assert load_config(tmp_path).measure == meant


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).write_text("cycles: 1\nagent: [unclosed\n")
    with pytest.raises(ConfigError, match=r"line \d+ is not valid YAML"):
        load_config(tmp_path)


def test_cli_exits_2_on_a_malformed_configuration_and_writes_nothing(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / CONFIG_FILE).write_text("max_parallel: many\n")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = subprocess.run(
        [sys.executable, "-m", "shoemaker", "-C", str(tmp_path), "generation", "start"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "configuration.yaml" in proc.stderr and "max_parallel" in proc.stderr
    assert proc.stderr.count("\n") <= 3, proc.stderr
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before  # not even the state directory was created
