"""What a stitch script does in the working directory, each step reported as a tool use."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping

from shoemaker.agents.rehearsal.emitter import Emitter

# Not typing's: the agent starts without importing typing (PYTHONPROFILEIMPORTTIME, tests).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _inside(cwd: str, rel: str) -> str | None:
    """``rel`` (relative to ``cwd``, or absolute) resolved, when it lies inside ``cwd``. With
    ``os.path``, not pathlib: the agent starts without it (``Path.resolve`` is ``realpath``)."""
    target = os.path.realpath(os.path.join(cwd, rel))
    root = os.path.realpath(cwd)
    inside = root if root.endswith(os.sep) else root + os.sep
    return target if target == root or target.startswith(inside) else None


def plan_steps(d: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """The steps of a stitch script, in the order they run: subagents, writes, appends,
    deletes, commands, and last the signal."""
    steps: list[tuple[str, str, Any]] = []
    steps += [("subagent", name, None) for name in d.get("subagents") or []]
    steps += [("write", path, text) for path, text in (d.get("files") or {}).items()]
    steps += [("append", path, text) for path, text in (d.get("append") or {}).items()]
    steps += [("delete", path, None) for path in d.get("delete") or []]
    steps += [("run", cmd, None) for cmd in d.get("run") or []]
    steps += [("detach", cmd, None) for cmd in d.get("detach") or []]
    if "signal" in d:
        signal = d["signal"]
        steps.append(("signal", signal.get("status", "completed"), signal.get("reason", "")))
    return steps


def act(
    em: Emitter, kind: str, target: str, payload: Any, env: Mapping[str, str] | None = None
) -> None:
    """Take one step and print it as the tool use the real CLI would have made. ``env``: the
    agent's environment (default: this process's)."""
    cwd = em.cwd
    if kind == "signal":
        _signal(em, target, payload, os.environ if env is None else env)
        return
    if kind == "subagent":
        # The CLI runs a subagent as a Task tool use naming its type.
        em.tool(
            "Task",
            {
                "description": f"Run {target}",
                "prompt": f"Do your part as {target}.",
                "subagent_type": target,
            },
            f"The {target} subagent finished its work.",
            False,
        )
        return
    if kind == "run":
        _bash(em, shlex.split(target), target, f"Run {target}")
        return
    if kind == "detach":
        # Like a background command: only the command itself is waited for, never what it
        # leaves running (`setsid -f …`), and its output goes nowhere.
        import subprocess  # here: most scripts run nothing, and it is 5 ms of the start

        argv = shlex.split(target)
        io = subprocess.DEVNULL
        try:
            code = subprocess.run(
                argv, cwd=cwd, stdin=io, stdout=io, stderr=io, check=False
            ).returncode
            output, failed = f"Started in the background (exit code {code})", code != 0
        except OSError as exc:
            output, failed = f"{argv[0] if argv else target}: {exc.strerror}", True
        em.tool("Bash", {"command": target, "run_in_background": True}, output, failed)
        return
    path = _inside(cwd, target)  # write, append or delete
    if path is None:
        name = {"write": "Write", "append": "Edit", "delete": "Bash"}[kind]
        em.tool(
            name, {"file_path": target}, f"Refused: {target} is outside the working directory", True
        )
        return
    if kind == "write":
        existed = os.path.exists(path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _write(path, payload)
        verb = "updated" if existed else "created"
        em.tool(
            "Write",
            {"file_path": path, "content": payload},
            f"File {verb} successfully at: {path}",
            False,
        )
    elif kind == "append":
        os.makedirs(os.path.dirname(path), exist_ok=True)
        old = ""
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                old = f.read()
        _write(path, old + payload)
        em.tool(
            "Edit",
            {"file_path": path, "old_string": old[-200:], "new_string": old[-200:] + payload},
            f"The file {path} has been updated.",
            False,
        )
    else:
        existed = os.path.exists(path)
        if existed:
            os.unlink(path)
        em.tool(
            "Bash",
            {"command": f"rm {shlex.quote(target)}", "description": f"Delete {target}"},
            "" if existed else f"rm: cannot remove '{target}': No such file or directory",
            not existed,
        )


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _signal(em: Emitter, status: str, reason: str, env: Mapping[str, str]) -> None:
    """Run ``"$SHOEMAKER" done`` as an agent told so by the prompt would: the command its
    environment names, without a shell."""
    args = ["done", "--status", status, *(["--reason", reason] if reason else [])]
    shown = f'"$SHOEMAKER" {shlex.join(args)}'
    command = env.get("SHOEMAKER", "")
    if not command:
        em.tool("Bash", {"command": shown}, "SHOEMAKER is not set: not inside a run", True)
        return
    _bash(em, [command, *args], shown, f"Signal {status}", env)


def _bash(
    em: Emitter,
    argv: list[str],
    shown: str,
    description: str,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run ``argv`` (no shell) in the worktree and print it as the CLI's Bash tool use, with
    its output's tail and, when it failed, its exit code."""
    import subprocess  # here: most scripts run nothing, and it is 5 ms of the start

    try:
        proc = subprocess.run(
            argv,
            cwd=em.cwd,
            env=None if env is None else dict(env),
            capture_output=True,
            text=True,
            check=False,
        )
        output, failed = (proc.stdout + proc.stderr)[-4000:], proc.returncode != 0
        if failed:
            output = f"Exit code {proc.returncode}\n{output}"
    except OSError as exc:
        output, failed = f"{argv[0] if argv else shown}: {exc.strerror}", True
    em.tool("Bash", {"command": shown, "description": description}, output, failed)
