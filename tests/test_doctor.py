"""shoemaker doctor: a checklist with a fix for each failure; runs stop on it before any agent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents import CODEX, GEMINI
from projects import make_project, task
from shoemaker.engine.generation import start_generation


def doctor(root: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shoemaker", "-C", str(root), "doctor"],
        capture_output=True,
        text=True,
        env=env,
    )


def test_every_check_passes_for_the_rehearsal_agent(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [])
    proc = doctor(project.root)
    assert proc.returncode == 0, proc.stdout
    for name in ("git", "agent CLI", "credentials", "sandbox", "state directory", "gates"):
        assert f"✓ {name}:" in proc.stdout
    assert "all checks passed" in proc.stdout


def test_a_missing_agent_fails_with_a_fix_and_stops_a_run(fast_tmp: Path) -> None:
    project = make_project(
        fast_tmp,
        [task("A")],
        agent={"command": "no-such-agent-xyz", "env": {"ANTHROPIC_API_KEY": "sk-ant-dummy-key"}},
    )
    proc = doctor(project.root)
    assert proc.returncode == 1
    assert "✗ agent CLI: 'no-such-agent-xyz' is not on PATH" in proc.stdout
    assert "fix: install it" in proc.stdout and "1 check(s) failed" in proc.stdout
    start_generation(project, "g")
    run = subprocess.run(
        [sys.executable, "-m", "shoemaker", "-C", str(project.root), "run"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1 and "preflight failed" in run.stderr
    assert project.store.runs() == []  # no agent started


def test_the_claude_cli_without_credentials_is_a_failed_check(fast_tmp: Path) -> None:
    home = fast_tmp / "home"
    home.mkdir()
    project = make_project(
        fast_tmp, [], agent={"command": sys.executable, "env": {"HOME": str(home)}}
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN")
    }
    proc = doctor(project.root, env)
    assert proc.returncode == 1
    assert "✗ credentials:" in proc.stdout and "claude login" in proc.stdout


def test_codex_is_checked_with_its_version_and_its_own_credentials(fast_tmp: Path) -> None:
    home = fast_tmp / "home"
    home.mkdir()
    agent = {"kind": "codex", "command": str(CODEX), "env": {"HOME": str(home)}}
    project = make_project(fast_tmp, [], agent=agent)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENAI_API_KEY", "CODEX_API_KEY", "CODEX_HOME")
    }
    env["ANTHROPIC_API_KEY"] = "sk-ant-not-what-codex-needs"
    env["COLUMNS"] = "300"
    proc = doctor(project.root, env)
    assert proc.returncode == 1
    assert f"✓ agent CLI: {CODEX}: codex-cli 0.171.0" in proc.stdout
    assert f"✗ credentials: none of OPENAI_API_KEY, CODEX_API_KEY is set, no {home}" in proc.stdout
    assert "set OPENAI_API_KEY (or CODEX_API_KEY), or run `codex login`" in proc.stdout
    proc = doctor(project.root, {**env, "CODEX_API_KEY": "sk-test-codex-key"})
    assert proc.returncode == 0, proc.stdout
    assert "✓ credentials: CODEX_API_KEY is set" in proc.stdout
    (home / ".codex").mkdir(exist_ok=True)  # codex --version made it
    (home / ".codex" / "auth.json").write_text("{}")
    proc = doctor(project.root, env)
    assert "✓ credentials: " in proc.stdout and "(codex login" in proc.stdout


def test_gemini_is_checked_with_its_version_and_its_api_key(fast_tmp: Path) -> None:
    home = fast_tmp / "home"
    home.mkdir()
    agent = {"kind": "gemini", "command": str(GEMINI), "env": {"HOME": str(home)}}
    project = make_project(fast_tmp, [], agent=agent)
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    env["ANTHROPIC_API_KEY"] = "sk-ant-not-what-gemini-needs"
    env["COLUMNS"] = "300"
    proc = doctor(project.root, env)
    assert proc.returncode == 1
    assert f"✓ agent CLI: {GEMINI}: 0.61.0" in proc.stdout
    assert "✗ credentials: none of GEMINI_API_KEY, GOOGLE_API_KEY is set" in proc.stdout
    assert "set GEMINI_API_KEY (a key from Google AI Studio)" in proc.stdout
    proc = doctor(project.root, {**env, "GEMINI_API_KEY": "AIza-test-gemini-key"})
    assert proc.returncode == 0, proc.stdout
    assert "✓ credentials: GEMINI_API_KEY is set" in proc.stdout


@pytest.mark.skipif(not Path("/usr/bin/bwrap").exists(), reason="bubblewrap: .ci/run installs it")
def test_doctor_proves_the_bwrap_sandbox_escape_by_escape(tmp_path: Path) -> None:
    # On the real disk: bwrap mounts a /dev of its own, which would hide a checkout on tmpfs.
    project = make_project(tmp_path, [], sandbox="bwrap")
    proc = subprocess.run(
        [sys.executable, "-m", "shoemaker", "doctor"],
        capture_output=True,
        text=True,
        cwd=project.root,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert proc.returncode == 0, proc.stdout
    assert "✓ sandbox: bwrap: a trial run worked; 12 escapes refused" in proc.stdout
    escapes = [line for line in proc.stdout.splitlines() if line.startswith("✓ escape ")]
    root = project.root.resolve()
    for title in (
        "write into the host checkout via /proc/<shoemaker pid>/cwd",
        "see host processes (shoemaker's) in /proc",
        "remount / read-write, write the host's /tmp",
        f"write outside the worktree: {root}",
        f"write outside the worktree: {root}/.git",
        f"write outside the worktree: {Path.home().resolve()}",
        "write outside the worktree: /tmp",
        "keep a capability (CapEff)",
        "setuid escalation (no_new_privs)",
        "create a user namespace (to regain capabilities)",
        "rewrite the worktree's .git file (host git follows it)",
        "connect to a host unix socket (daemon, tmux, ssh agent)",
    ):
        assert any(line.startswith(f"✓ escape {title}: refused (") for line in escapes), title
    assert len(escapes) == 12 and "✗" not in proc.stdout
    assert not list(root.glob(".shoemaker-escape-*"))
