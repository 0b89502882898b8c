"""Acting out one invocation: the script from the directives, then one handler per outcome."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable

from shoemaker.agents.rehearsal.actions import act, plan_steps
from shoemaker.agents.rehearsal.args import Args
from shoemaker.agents.rehearsal.directives import (
    DirectiveError,
    measure_proposals,
    read_blocks,
    stitch_directives,
)
from shoemaker.agents.rehearsal.emitter import Emitter, new_uuid

# Not typing's: the agent starts without importing typing (PYTHONPROFILEIMPORTTIME, tests).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from os import PathLike
    from typing import Any, NoReturn

_MEASURE = re.compile(r"<!--\s*shoemaker:measure\s+output=(\S+)\s+max=(\d+)\s*-->")
_STITCH = re.compile(r"<!--\s*shoemaker:stitch\s+task=(\S+)\s+attempt=(\d+)\s*-->")


class Script:
    """One invocation ready to be acted out: its directives, its steps and its final text."""

    def __init__(
        self,
        args: Args,
        em: Emitter,
        prompt: str,
        directives: dict[str, Any],
        steps: list[tuple[str, str, Any]],
        final: str,
        measure: bool,
    ) -> None:
        self.args, self.em, self.prompt = args, em, prompt
        self.directives, self.steps, self.final, self.measure = directives, steps, final, measure

    def exit_code(self, default: int) -> int:
        return int(self.directives.get("exit_code", default))


def run(args: Args, prompt: str, cwd: str | PathLike[str]) -> int:
    """Act out one invocation; returns the exit code."""
    em = Emitter(args, cwd, args.session_id or new_uuid())
    measure = _MEASURE.search(prompt)
    stitch = _STITCH.search(prompt)
    attempt = int(stitch.group(2)) if stitch else 1

    def on_sigint(signum: int, frame: object) -> None:
        emit_interrupted(em, prompt)
        os._exit(0)

    signal.signal(signal.SIGINT, on_sigint)
    try:
        blocks = read_blocks(prompt)
        directives = stitch_directives(blocks, attempt)
        proposals, via = (
            measure_proposals(blocks, prompt, int(measure.group(2))) if measure else ([], "none")
        )
    except DirectiveError as exc:
        em.init()
        em.text(f"[rehearsal] bad directive: {exc}")
        em.result({}, prompt, f"[rehearsal] bad directive: {exc}", is_error=True)
        return 1

    outcome = directives.get("outcome", "success")
    if measure:
        from pathlib import Path  # only here and for a hold: the agent starts without it

        out_path = Path(measure.group(1))
        out_path = out_path if out_path.is_absolute() else Path(cwd) / out_path
        steps: list[tuple[str, str, Any]] = []
        if via == "file":
            steps = [("proposals", str(out_path), json.dumps(proposals, indent=2))]
        final = directives.get("text") or f"Proposed {len(proposals)} tasks."
        if via == "text":
            import yaml  # only here: the agent starts without it

            final += "\n\n```yaml\n" + yaml.safe_dump(proposals, sort_keys=False) + "```\n"
    else:
        steps = plan_steps(directives)
        final = directives.get("text") or _default_stitch(directives, steps, prompt, stitch)
    total = len(steps) * 2 + 2
    em.step_delay = float(directives.get("duration", 0)) / total if total else 0.0

    em.init()
    script = Script(args, em, prompt, directives, steps, final, measure is not None)
    limit = directives.get("rate_limit")
    if limit is not None:
        status = limit.get("status", "rejected")
        em.rate_limit_event(status, limit.get("resets_at"))
        if status == "rejected":
            # The API answers 429 until the CLI's retries are used up; nothing is done.
            emit_api_error(em, {**directives, "api_error_status": 429}, prompt)
            return script.exit_code(1)
    return HANDLERS[outcome](script)


def _work(s: Script, steps: list[tuple[str, str, Any]]) -> None:
    """The opening words, then ``steps`` taken one by one."""
    s.em.text(
        "Reading the task and the repository."
        if not s.measure
        else "Reading the documents and the existing tasks."
    )
    holds = {int(h["after"]): str(h["for"]) for h in s.directives.get("wait") or []}
    for done, (kind, target, payload) in enumerate(steps):
        _hold(s.em.cwd, holds.get(done))
        if kind == "proposals":
            from pathlib import Path

            Path(target).parent.mkdir(parents=True, exist_ok=True)
            Path(target).write_text(payload, encoding="utf-8")
            s.em.tool(
                "Write",
                {"file_path": target, "content": payload},
                f"File created successfully at: {target}",
                False,
            )
        else:
            act(s.em, kind, target, payload)


def _hold(cwd: str, path: str | None) -> None:
    """Wait, silent as an agent thinking, until ``path`` exists: whoever drives the rehearsal
    (a test, a person trying the dashboard) decides when the work goes on."""
    if path is None:
        return
    from pathlib import Path

    gate = Path(cwd) / path  # an absolute path stays itself
    while not gate.exists():
        time.sleep(0.02)


def _success(s: Script) -> int:
    """All the work, the final text and a result line."""
    _work(s, s.steps)
    s.em.text(s.final)
    s.em.result(s.directives, s.prompt, s.final)
    return s.exit_code(0)


def _max_turns(s: Script) -> int:
    """All the work done, then the CLI's turn limit instead of a result."""
    _work(s, s.steps)
    s.em.text(s.final)
    limit = s.args.max_turns or 1
    s.em.result(
        s.directives,
        s.prompt,
        s.final,
        subtype="error_max_turns",
        is_error=True,
        errors=[f"Reached maximum number of turns ({limit})"],
        terminal="max_turns",
    )
    return s.exit_code(1)


def _crash(s: Script) -> int:
    """Half the work, then a stack trace on stderr and no result line."""
    _work(s, s.steps[: len(s.steps) // 2])
    sys.stderr.write(
        "TypeError: Cannot read properties of undefined (reading 'input_tokens')\n"
        "    at processResult (file:///rehearsal/cli.js:1:1)\n"
    )
    return s.exit_code(1)


def _sigterm(s: Script) -> NoReturn:
    """Half the work, then the process signals itself, as when the machine stops it."""
    _work(s, s.steps[: len(s.steps) // 2])
    os.kill(os.getpid(), signal.SIGTERM)
    _sleep_forever()


def _hang(s: Script) -> NoReturn:
    """Never finish: silent, or with a status line every ``heartbeat`` seconds (a run that
    looks alive to an idle watchdog but never ends)."""
    heartbeat = float(s.directives.get("heartbeat", 0))
    em = s.em
    if heartbeat <= 0:
        _sleep_forever()
    while True:
        time.sleep(heartbeat)
        em.line(
            {
                "type": "system",
                "subtype": "status",
                "status": "requesting",
                "session_id": em.session_id,
                "uuid": new_uuid(),
            },
            delay=False,
        )


def _malformed(s: Script) -> int:
    """Lines that are not stream-json, then an exit (0 unless the script says otherwise)."""
    for junk in (
        "Loading configuration…",
        '{"type": "assistant", "message": {"id": "msg_tr',
        "[object Object]",
        "\x1b[31mwarning\x1b[0m: unexpected token",
    ):
        sys.stdout.write(junk + "\n")
        sys.stdout.flush()
    return s.exit_code(0)


def emit_interrupted(em: Emitter, prompt: str) -> None:
    """What the CLI prints when Ctrl-C interrupts it: a note, then an error result that still
    says what the run cost."""
    em.line(
        {
            "type": "user",
            "message": {
                "role": "user",
                "content": [{"type": "text", "text": "[Request interrupted by user]"}],
            },
            "parent_tool_use_id": None,
            "session_id": em.session_id,
            "uuid": new_uuid(),
        },
        delay=False,
    )
    em.result(
        {},
        prompt,
        "",
        subtype="error_during_execution",
        is_error=True,
        errors=["Request interrupted by user"],
        terminal="aborted_streaming",
    )


def _api_error(s: Script) -> int:
    """The API refuses: two retries announced, a synthetic error message, an error result."""
    emit_api_error(s.em, s.directives, s.prompt)
    return s.exit_code(1)


def emit_api_error(em: Emitter, directives: dict[str, Any], prompt: str) -> None:
    """The lines of a run the API refuses (``api_error_status``, default 529)."""
    status = int(directives.get("api_error_status", 529))
    kind = {
        401: "authentication_failed",
        429: "rate_limit",
        500: "server_error",
        529: "overloaded",
    }.get(status, "unknown")
    for n in (1, 2):
        em.line(
            {
                "type": "system",
                "subtype": "api_retry",
                "attempt": n,
                "max_retries": 2,
                "retry_delay_ms": 500 * n,
                "error_status": status,
                "error": kind,
                "uuid": new_uuid(),
                "session_id": em.session_id,
            }
        )
    message = f'API Error: {status} {{"type":"error","error":{{"type":"{kind}"}}}}'
    em.new_turn()
    em.assistant({"type": "text", "text": message}, error=kind, model="<synthetic>")
    em.result(directives, prompt, message, is_error=True, api_status=status, terminal="api_error")


def _sleep_forever() -> NoReturn:
    while True:
        time.sleep(3600)


HANDLERS: dict[str, Callable[[Script], int]] = {
    "success": _success,
    "crash": _crash,
    "hang": _hang,
    "malformed": _malformed,
    "max_turns": _max_turns,
    "api_error": _api_error,
    "sigterm": _sigterm,
}


def _default_stitch(
    directives: dict[str, Any],
    steps: list[tuple[str, str, Any]],
    prompt: str,
    stitch: re.Match[str] | None,
) -> str:
    """Without file directives a stitch still leaves a small, honest trace of the task."""
    if steps or any(k in directives for k in ("files", "append", "delete", "run")):
        return "Done."
    task = stitch.group(1) if stitch else "0"
    title = re.search(r"^# Task #\S+: (.+)$", prompt, re.MULTILINE)
    name = title.group(1) if title else f"task {task}"
    directives["files"] = {
        f"rehearsal/task-{task}.md": f"# {name}\n\nRehearsed by shoemaker-rehearsal.\n"
    }
    steps.extend(plan_steps(directives))
    return f"Wrote rehearsal/task-{task}.md for {name}."
