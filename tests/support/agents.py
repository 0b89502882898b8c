"""Helpers for tests that run real agent processes."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

#: The pinned codex CLI that ./dev installs (or SHOEMAKER_CODEX_BIN).
CODEX = Path(
    os.environ.get(
        "SHOEMAKER_CODEX_BIN",
        Path(__file__).resolve().parents[2] / ".tools/codex/node_modules/.bin/codex",
    )
)
#: The pinned gemini CLI that ./dev installs (or SHOEMAKER_GEMINI_BIN).
GEMINI = Path(
    os.environ.get(
        "SHOEMAKER_GEMINI_BIN",
        Path(__file__).resolve().parents[2] / ".tools/gemini/node_modules/.bin/gemini",
    )
)
REHEARSAL = [sys.executable, "-m", "shoemaker.agents.rehearsal"]
#: A clock that must outlast an agent's start-up (the idle and hard clocks run from the moment
#: the process starts): the rehearsal agent takes about 2 s to start on a busy 2-core machine,
#: and several times that with other test runs and a stress load beside it.
START_SEC = 15.0
#: A grace an agent must beat: time to answer the interrupt with its last result and exit.
BEAT_GRACE_SEC = 60.0
STREAM_ARGS = [
    "--dangerously-skip-permissions",
    "-p",
    "--verbose",
    "--output-format",
    "stream-json",
]


def directive(**keys: object) -> str:
    """A rehearsal block for a prompt, as JSON (valid YAML, read without PyYAML)."""
    return f"<!-- rehearsal\n{json.dumps(keys)}\n-->\n"


def stitch_prompt(task: int = 1, attempt: int = 1, **keys: object) -> str:
    return f"<!-- shoemaker:stitch task={task} attempt={attempt} -->\n# Task #{task}: t\n\n" + (
        directive(**keys) if keys else ""
    )


def agent_env(token: str) -> dict[str, str]:
    """The environment of a test agent, marked with ``token`` so that leftovers can be found."""
    env = dict(os.environ)
    env["IS_SANDBOX"] = "1"
    env["SHOEMAKER_TEST_TOKEN"] = token
    return env


def new_token() -> str:
    return uuid.uuid4().hex


def processes_with_token(token: str) -> list[int]:
    """Live processes whose environment carries ``token`` (zombies excluded)."""
    found = []
    needle = f"SHOEMAKER_TEST_TOKEN={token}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                status = (entry / "status").read_text()
                if "\nState:\tZ" not in status:
                    found.append(int(entry.name))
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    return found


def sleepers(token: str) -> list[int]:
    """Live ``sleep 300`` processes that carry ``token`` (left behind by a detaching test)."""
    found = []
    for pid in processes_with_token(token):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[-3:-1] == [b"sleep", b"300"]:
            found.append(pid)
    return found


def wait_for_file(path: Path) -> str:
    """A command for a rehearsal ``run`` step: returns once ``path`` exists, so that the test
    decides when that agent goes on (however slow the machine is)."""
    code = (
        "import os, time; "
        f"[time.sleep(0.02) for _ in iter(lambda: os.path.exists({str(path)!r}), True)]"
    )
    return f'{sys.executable} -c "{code}"'
