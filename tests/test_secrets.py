"""Secrets reach the agent through its environment and never the store, the transcripts, the
history files or the screen: a planted key is searched for everywhere afterwards."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import zlib
from pathlib import Path

import yaml

from agents import STREAM_ARGS
from projects import make_project, task
from shoemaker.config import load_config
from shoemaker.model import GenerationState, PlanState, TaskState
from shoemaker.secrets import Redactor, collect_secrets, is_secret_name
from shoemaker.store import NewTask, Store

KEY = "sk-ant-api03-PLANTED-7f3c9e1d2b4a6f8e0c1a"
TOKEN = "oauth-PLANTED-a1b2c3d4e5f6a7b8c9d0"


def test_names_that_say_secret() -> None:
    secret = ["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "DB_PASSWORD", "GPG_KEY"]
    places = ["SSH_AUTH_SOCK", "TOKEN_FILE", "KEYBOARD", "HOME", "GOOGLE_CREDENTIALS_PATH"]
    assert [n for n in secret + places if is_secret_name(n)] == secret


def test_collect_and_redact(tmp_path: Path) -> None:
    (tmp_path / ".secrets").mkdir()
    (tmp_path / ".secrets" / "claude.json").write_text(
        json.dumps({"claudeAiOauth": {"accessToken": TOKEN, "expiresAt": 1}})
    )
    (tmp_path / "configuration.yaml").write_text("agent: {env: {MY_API_KEY: " + KEY + "}}\n")
    secrets = collect_secrets(tmp_path, load_config(tmp_path), environ={"HOME": "/root"})
    assert secrets[KEY] == "MY_API_KEY" and secrets[TOKEN] == ".secrets/claude.json"
    redactor = Redactor(secrets)
    assert redactor.text(f"key={KEY} token={TOKEN}") == (
        "key=[redacted MY_API_KEY] token=[redacted .secrets/claude.json]"
    )
    assert KEY.encode() not in redactor.data(f'{{"k":"{KEY}"}}'.encode())
    # A key in podman_args (`-e NAME=VALUE`, as the seed's example does) is a secret too, and
    # an agent argument holding one is stored redacted.
    (tmp_path / "configuration.yaml").write_text(
        yaml.safe_dump({"podman_args": ["-e", f"ANTHROPIC_API_KEY={TOKEN}"]})
    )
    secrets = collect_secrets(tmp_path, load_config(tmp_path), environ={})
    assert secrets[TOKEN] == "ANTHROPIC_API_KEY"
    store = Store(tmp_path / "s.db", Redactor(secrets))
    run = store.start_run(
        generation=None,
        task_id=None,
        phase="stitch",
        attempt=1,
        prompt="",
        argv=["claude", f"--api-key={TOKEN}"],
        env_names=[],
        cwd=str(tmp_path),
    )
    assert store.get_run(run).argv == ["claude", "--api-key=[redacted ANTHROPIC_API_KEY]"]
    store.close()


def test_codex_keys_and_its_login_are_secrets(tmp_path: Path) -> None:
    assert is_secret_name("OPENAI_API_KEY") and is_secret_name("CODEX_API_KEY")
    login = tmp_path / "codex-home"
    login.mkdir()
    (login / "auth.json").write_text(
        json.dumps({"OPENAI_API_KEY": None, "tokens": {"access_token": TOKEN, "id": "short"}})
    )
    (tmp_path / "configuration.yaml").write_text("agent: {kind: codex}\n")
    environ = {"CODEX_HOME": str(login), "CODEX_API_KEY": KEY}
    secrets = collect_secrets(tmp_path, load_config(tmp_path), environ=environ)
    assert secrets == {TOKEN: "codex auth.json", KEY: "CODEX_API_KEY"}
    # Another kind does not read codex's login.
    (tmp_path / "configuration.yaml").write_text("agent: {kind: claude}\n")
    assert TOKEN not in collect_secrets(tmp_path, load_config(tmp_path), environ=environ)


def test_a_secret_is_found_in_its_json_escaped_forms() -> None:
    password = 'pa"ss\\wörd\tend'
    redactor = Redactor({password: "DB_PASSWORD", "ключ-секрет-42": "SECRETS"})
    for text in (
        json.dumps({"output": f"login {password} ok"}),
        json.dumps({"output": f"login {password} ok"}, ensure_ascii=False),
        json.dumps({"key": "ключ-секрет-42"}),
    ):
        redacted = redactor.text(text)
        assert "[redacted" in redacted and "ss\\\\w" not in redacted and "42" not in redacted
        json.loads(redacted)  # still valid JSON
        assert "[redacted" in redactor.data(text.encode()).decode()


def test_a_planted_key_is_nowhere_after_a_run(fast_tmp: Path) -> None:
    show_env = "import os; print('gate sees', os.environ.get('ANTHROPIC_API_KEY'))"
    project = make_project(
        fast_tmp,
        [
            task(
                "Leaky",
                files={"a.py": "A = 1\n"},
                run=["printenv ANTHROPIC_API_KEY", f"cat {fast_tmp}/repo/.secrets/claude.json"],
                text="done",
            )
        ],
        agent={
            "command": sys.executable,
            "args": ["-m", "shoemaker.agents.rehearsal", *STREAM_ARGS],
            "env": {"IS_SANDBOX": "1", "ANTHROPIC_API_KEY": KEY},
        },
        gates=[{"name": "env", "command": [sys.executable, "-c", show_env]}],
    )
    root = project.root
    (root / ".secrets").mkdir()
    (root / ".secrets" / "claude.json").write_text(json.dumps({"accessToken": TOKEN}))
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY}
    cli = [sys.executable, "-m", "shoemaker", "-C", str(root)]
    subprocess.run([*cli, "start", "g"], check=True, capture_output=True, env=env)
    shown = subprocess.run([*cli, "run", "--events", "ndjson"], capture_output=True, env=env)
    story = subprocess.run([*cli, "run"], capture_output=True, env=env)  # the story printer
    assert shown.returncode == 0, shown.stderr

    # The agent did get the key, and printed it: the redacted marker is what was kept.
    assert b"[redacted ANTHROPIC_API_KEY]" in shown.stdout
    assert b"gate sees [redacted ANTHROPIC_API_KEY]" in shown.stdout
    places = {"stdout": shown.stdout + shown.stderr + story.stdout + story.stderr}
    state = root / ".shoemaker"
    for path in state.rglob("*"):
        if path.is_file():
            places[str(path)] = path.read_bytes()
    db = sqlite3.connect(state / "shoemaker.db")
    for (blob,) in db.execute("SELECT transcript FROM runs WHERE transcript IS NOT NULL"):
        places["transcript"] = places.get("transcript", b"") + zlib.decompress(blob)
    for row in db.execute("SELECT * FROM runs"):
        places["runs"] = places.get("runs", b"") + repr(row).encode()
    db.close()
    assert any(b"[redacted .secrets/claude.json]" in v for v in places.values())
    for where, content in places.items():
        assert KEY.encode() not in content, where
        assert TOKEN.encode() not in content, where
    assert (
        ".secrets"
        not in subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True
        ).stdout
    )


def test_text_without_a_secret_comes_back_as_it_was_and_with_one_redacted() -> None:
    few = Redactor({"hunter2hunter2": "API_KEY"})
    many = Redactor({f"secret-value-{n:04}": f"KEY_{n}" for n in range(40)})
    for redactor, secret, name in (
        (few, "hunter2hunter2", "API_KEY"),
        (many, "secret-value-0039", "KEY_39"),
    ):
        clean_text, clean_data = "nothing to see " * 100, b"nothing to see " * 100
        assert redactor.text(clean_text) is clean_text
        assert redactor.data(clean_data) is clean_data
        assert redactor.text(f"a {secret} b") == f"a [redacted {name}] b"
        assert redactor.data(f"a {secret} b".encode()) == f"a [redacted {name}] b".encode()


def test_gemini_keys_its_login_and_its_env_file_are_secrets(tmp_path: Path) -> None:
    assert is_secret_name("GEMINI_API_KEY") and is_secret_name("GOOGLE_API_KEY")
    home = tmp_path / "gemini-home"
    (home / ".gemini").mkdir(parents=True)
    (home / ".gemini" / "oauth_creds.json").write_text(
        json.dumps({"access_token": TOKEN, "token_type": "Bearer", "expiry_date": 1})
    )
    env_key = "AIzaSy-from-the-env-file-0000"
    (home / ".gemini" / ".env").write_text(
        f"GEMINI_MODEL=gemini-2.5-pro\nGEMINI_API_KEY={env_key}\n"
    )
    (tmp_path / "configuration.yaml").write_text("agent: {kind: gemini}\n")
    environ = {"GEMINI_CLI_HOME": str(home), "GEMINI_API_KEY": KEY}
    secrets = collect_secrets(tmp_path, load_config(tmp_path), environ=environ)
    assert secrets == {
        TOKEN: "gemini oauth_creds.json",
        KEY: "GEMINI_API_KEY",
        env_key: "gemini .env GEMINI_API_KEY",
    }
    # Another kind does not read gemini's files, unless tasks may name gemini (agents:).
    (tmp_path / "configuration.yaml").write_text("agent: {kind: codex}\n")
    assert TOKEN not in collect_secrets(tmp_path, load_config(tmp_path), environ=environ)
    other_key = "AIza-in-agents-gemini-env-00"
    (tmp_path / "configuration.yaml").write_text(
        f"agent: {{kind: codex}}\nagents:\n  gemini: {{env: {{GEMINI_API_KEY: {other_key}}}}}\n"
    )
    secrets = collect_secrets(
        tmp_path, load_config(tmp_path), environ={"GEMINI_CLI_HOME": str(home)}
    )
    assert secrets[other_key] == "GEMINI_API_KEY"
    assert secrets[TOKEN] == "gemini oauth_creds.json"


def test_a_secret_quoted_in_a_reason_is_stored_redacted(fast_tmp: Path) -> None:
    # A reason may quote what a process printed (an agent's error, a git failure, the error
    # that stopped a run): the task's, the generation's and the plan's rows keep it redacted,
    # as do the events that announce them.
    store = Store(fast_tmp / "s.db", Redactor({KEY: "ANTHROPIC_API_KEY"}))
    store.create_generation("g", "shoemaker/g", "main", "0" * 40)
    plan, _ = store.create_plan("g")
    (t,), _ = store.add_tasks("g", [NewTask("A")], 1, "plan")
    moved = [
        store.transition_task(t.id, TaskState.RUNNING, f"agent said {KEY}"),
        store.set_generation_state("g", GenerationState.PAUSED, f"run stopped: {KEY}"),
        store.set_plan_state(plan.id, PlanState.FAILED, f"measure printed {KEY}"),
    ]
    marker = "[redacted ANTHROPIC_API_KEY]"
    assert [e.reason if e else "" for e in moved] == [
        f"agent said {marker}",
        f"run stopped: {marker}",
        f"measure printed {marker}",
    ]
    assert store.get_task(t.id).reason == f"agent said {marker}"
    assert store.get_generation("g").reason == f"run stopped: {marker}"
    assert store.get_plan(plan.id).reason == f"measure printed {marker}"
    store.close()
    for path in fast_tmp.iterdir():
        assert KEY.encode() not in path.read_bytes(), path
