"""codex and gemini on a real Dask cluster (``dask scheduler`` and two ``dask worker``
processes on loopback): the pinned CLIs run on the workers against the loopback mocks of their
APIs, with their config homes made there, in the attempt's temporary directory, the person's
login sent sealed, and what the run left in that home read back on the worker."""

from __future__ import annotations

import hashlib
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents import CODEX, GEMINI
from cluster import Cluster, two_workers
from projects import cli, make_project
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.project import Project
from shoemaker.engine.selection import Selection
from shoemaker.events import AgentStarted, Event
from shoemaker.mocks import gemini as gm
from shoemaker.mocks import responses as cx
from shoemaker.model import TaskState, Usage
from shoemaker.store import NewTask

pytestmark = pytest.mark.slow

#: Models the CLIs know, and prices for them.
CODEX_MODEL, GEMINI_MODEL = "gpt-5.5", "gemini-2.5-flash"
PRICES = {
    CODEX_MODEL: {"input": 1.25, "output": 10.0, "cache_read": 0.125, "cache_write": 0.0},
    GEMINI_MODEL: {"input": 0.3, "output": 2.5, "cache_read": 0.075, "cache_write": 0.0},
}
#: The person's codex login: a secret, sent to the workers sealed.
LOGIN_KEY = "sk-login-0123456789abcdef"


@pytest.fixture
def cluster(fast_tmp: Path) -> Iterator[Cluster]:
    with two_workers(fast_tmp) as found:
        yield found


def on_cluster(
    tmp: Path, cluster: Cluster, kind: str, env: dict[str, str], **settings: Any
) -> Project:
    """A project whose agent is the pinned ``kind`` CLI, with ``executor: dask``; one task."""
    command, model = (CODEX, CODEX_MODEL) if kind == "codex" else (GEMINI, GEMINI_MODEL)
    if not command.exists():
        pytest.fail(f"the {kind} CLI is not installed at {command}: run ./dev test")
    agent = {
        "kind": kind,
        "command": str(command),
        "model": model,
        "env": env,
        "max_time_sec": 120,
        "idle_timeout_sec": 60,
        "kill_grace_sec": 5,
        **settings.pop("agent", {}),
    }
    project = make_project(
        tmp,
        [],
        agent=agent,
        prices=PRICES,
        executor="dask",
        dask={"scheduler": cluster.address, "resources": {"agent_slot": 1}},
        **settings,
    )
    start_generation(project, "g")
    project.store.add_tasks("g", [NewTask("Note where", "Note where you run.")], 1, "test")
    return project


def workers_of(project: Project) -> list[str]:
    seen: list[str] = []

    def listen(event: Event) -> None:
        if isinstance(event, AgentStarted) and event.task_id is not None:
            seen.append(event.worker)

    project.bus.add_listener(listen)
    return seen


def landed_file(project: Project, name: str) -> list[str]:
    shown = subprocess.run(
        ["git", "-C", str(project.root), "show", f"generation-g:{name}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return shown.stdout.splitlines()


async def stitch(project: Project) -> None:
    await Engine(project).run(cycles=1, selection=Selection())


def person_home(tmp: Path) -> tuple[Path, Path]:
    """The orchestrator's person's HOME, with a codex login in it."""
    home = tmp / "home"
    (home / ".codex").mkdir(parents=True)
    login = home / ".codex" / "auth.json"
    login.write_text(f'{{"OPENAI_API_KEY": "{LOGIN_KEY}"}}\n')
    return home, login


@pytest.mark.parametrize("sandbox", ["none", "bwrap"])
async def test_codex_runs_on_a_worker_with_its_home_and_login_there(
    fast_tmp: Path, cluster: Cluster, sandbox: str
) -> None:
    home, login = person_home(fast_tmp)
    # The person's login is not in the sandbox (bwrap's /dev hides this tmpfs): its digest is.
    note = (
        'printf "%s\\n" "$CODEX_HOME" > where.txt && sha256sum "$CODEX_HOME/auth.json" >> where.txt'
    )
    with cx.mock_responses() as api:
        env = {"OPENAI_BASE_URL": api.url, "OPENAI_API_KEY": "sk-test-0000", "HOME": str(home)}
        project = on_cluster(fast_tmp, cluster, "codex", env, sandbox=sandbox)
        workers = workers_of(project)
        api.script(cx.Turn([cx.shell(note)]), cx.Turn([cx.message("Noted.")]))
        await stitch(project)
    (task,) = project.store.list_tasks("g")
    assert task.state == TaskState.DONE, task.reason
    assert workers and set(workers) <= {"w1", "w2"}
    # Its home was in the attempt's temporary directory on the worker, the login copied in.
    where, same = landed_file(project, "where.txt")
    assert where.startswith(f"{fast_tmp / 'worker-tmp'}/shoemaker-attempt-"), where
    assert same.split()[0] == hashlib.sha256(login.read_bytes()).hexdigest()
    # Here, no config home was made, and the login's key is nowhere the cluster logged.
    assert not (project.state_dir / "agent-homes").exists()
    assert all(LOGIN_KEY not in line for line in cluster.log)
    (run,) = project.store.runs(task_id=task.id)
    assert run.ok and run.usage == Usage(2000, 80, 0, 400)


async def test_a_codex_run_stopped_mid_turn_on_a_worker_is_charged_from_its_session_there(
    fast_tmp: Path, cluster: Cluster
) -> None:
    home, _ = person_home(fast_tmp)
    release = threading.Event()
    with cx.mock_responses() as api:
        env = {"OPENAI_BASE_URL": api.url, "OPENAI_API_KEY": "sk-test-0000", "HOME": str(home)}
        # Idle for 20 s: the agent is stopped on its worker while its second request hangs.
        agent = {"idle_timeout_sec": 20}
        project = on_cluster(fast_tmp, cluster, "codex", env, agent=agent, max_retries=0)
        api.script(
            cx.Turn([cx.add_file("hello.py", "HELLO = 1")]),
            cx.Turn([cx.message("never sent")], hold=release),
        )
        try:
            await stitch(project)
        finally:
            release.set()
    (task,) = project.store.list_tasks("g")
    (run,) = project.store.runs(task_id=task.id)
    assert run.ok is False and "idle" in run.reason, run.reason
    assert b"turn.completed" not in project.store.transcript(run.id)
    # The first reply's tokens, from codex's session file in its home on the worker: read
    # there, since that home went with the attempt's directory.
    assert run.usage == Usage(1000, 40, 0, 200)
    price = project.config.price(CODEX_MODEL)[1]
    assert run.cost_estimated and run.cost_usd == pytest.approx(price.cost(run.usage))
    assert not (project.state_dir / "agent-homes").exists()


async def test_gemini_runs_on_a_worker_with_its_home_there(
    fast_tmp: Path, cluster: Cluster
) -> None:
    home = fast_tmp / "home"
    home.mkdir()
    note = (
        'printf "%s\\n" "$GEMINI_CLI_HOME" > where.txt && '
        'test -f "$GEMINI_CLI_HOME/.gemini/settings.json" && echo settings >> where.txt'
    )
    with gm.mock_gemini() as api:
        env = {
            "GOOGLE_GEMINI_BASE_URL": api.url,
            "GEMINI_API_KEY": "AIza-test-not-a-real-key-0000",
            "HOME": str(home),
        }
        project = on_cluster(fast_tmp, cluster, "gemini", env)
        workers = workers_of(project)
        api.script(gm.Turn([gm.shell(note)]), gm.Turn([gm.text("Noted.")]))
        await stitch(project)
    (task,) = project.store.list_tasks("g")
    assert task.state == TaskState.DONE, task.reason
    assert workers and set(workers) <= {"w1", "w2"}
    where, settings = landed_file(project, "where.txt")
    assert where.startswith(f"{fast_tmp / 'worker-tmp'}/shoemaker-attempt-"), where
    assert settings == "settings"
    assert not (project.state_dir / "agent-homes").exists()
    (run,) = project.store.runs(task_id=task.id)
    assert run.ok and run.usage.input_tokens > 0


def test_doctor_checks_every_agent_cli_a_task_may_name_on_the_workers(
    fast_tmp: Path, cluster: Cluster
) -> None:
    project = make_project(
        fast_tmp,
        [],
        executor="dask",
        dask={"scheduler": cluster.address, "resources": {"agent_slot": 1}},
        agents={"codex": {"command": "codex-not-on-any-worker"}},
    )
    doctor = cli(project, "doctor")
    said = " ".join(doctor.stdout.split())  # as printed, wrapped to the terminal
    assert doctor.returncode == 1, said
    assert "✗ dask cluster: dask worker tcp://127.0.0.1:" in said
    assert said.count("'codex-not-on-any-worker' is not on its PATH") == 2  # each worker
    # The configured agent (the rehearsal agent, by its interpreter's path) is on both.
    assert f"{project.config.agent.command}' is not" not in said
