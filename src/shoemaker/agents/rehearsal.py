"""``shoemaker-rehearsal``: a stand-in for the claude CLI, scripted by its own prompt.

It accepts the claude CLI's arguments, reads the prompt on stdin, acts on ``<!-- rehearsal …-->``
YAML blocks found in the prompt (schema: docs/REHEARSAL.md), edits files in its working
directory, and prints stream-json shaped like the real CLI's, ending the way the CLI ends for
the chosen outcome. It imports only the standard library and PyYAML, so it starts fast.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from shoemaker.errors import BadInput

VERSION = "2.1.197-rehearsal"
DEFAULT_MODEL = "claude-sonnet-4-5-rehearsal"
TOOLS = [
    "Task",
    "Bash",
    "Glob",
    "Grep",
    "Read",
    "Edit",
    "Write",
    "NotebookEdit",
    "WebFetch",
    "TodoWrite",
    "WebSearch",
]
# Toy prices per million tokens (input, output, cache read, cache creation), like Sonnet's.
PRICES = (3.0, 15.0, 0.30, 3.75)
OUTCOMES = ("success", "crash", "hang", "malformed", "max_turns", "api_error", "sigterm")

# Flags of the claude CLI that take a value (so that the value is not taken for the prompt).
VALUE_FLAGS = {
    "--output-format",
    "--input-format",
    "--model",
    "--max-turns",
    "--session-id",
    "--resume",
    "-r",
    "--fallback-model",
    "--permission-mode",
    "--allowedTools",
    "--allowed-tools",
    "--disallowedTools",
    "--disallowed-tools",
    "--tools",
    "--mcp-config",
    "--settings",
    "--add-dir",
    "--append-system-prompt",
    "--system-prompt",
    "--system-prompt-file",
    "--append-system-prompt-file",
    "--max-budget-usd",
    "--json-schema",
    "--agents",
    "--setting-sources",
    "--permission-prompt-tool",
    "--max-thinking-tokens",
    "--thinking",
    "--resume-session-at",
    "--debug-file",
    "--plugin-dir",
    "--betas",
    "--agent",
    "--effort",
    "--file",
    "--from-pr",
    "--name",
    "-n",
    "--remote-control-session-name-prefix",
}

_BLOCK = re.compile(r"<!--\s*rehearsal\b(.*?)-->", re.DOTALL)
_MEASURE = re.compile(r"<!--\s*shoemaker:measure\s+output=(\S+)\s+max=(\d+)\s*-->")
_STITCH = re.compile(r"<!--\s*shoemaker:stitch\s+task=(\S+)\s+attempt=(\d+)\s*-->")
_EXISTING = re.compile(r"^- #\d+ \[[a-z_]+\] (.+)$", re.MULTILINE)
_HEADING = re.compile(r"^#{2,3} +(.+?) *#*$", re.MULTILINE)

STITCH_KEYS = {
    "files",
    "append",
    "delete",
    "run",
    "detach",
    "text",
    "duration",
    "tokens",
    "cost_usd",
    "outcome",
    "on_attempt",
    "exit_code",
    "api_error_status",
    "heartbeat",
}
MEASURE_KEYS = {"propose", "propose_via"}


class DirectiveError(BadInput, ValueError):
    """A rehearsal block that cannot be followed."""


@dataclass
class Args:
    output_format: str = "text"
    verbose: bool = False
    model: str = DEFAULT_MODEL
    max_turns: int | None = None
    session_id: str | None = None
    skip_permissions: bool = False
    prompt: str | None = None


def parse_args(argv: list[str]) -> Args:
    args = Args()
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=")
        value: str | None = inline if eq else None
        if name in VALUE_FLAGS and value is None and i + 1 < len(argv):
            i += 1
            value = argv[i]
        if name == "--output-format":
            args.output_format = value or "text"
        elif name == "--model":
            args.model = value or DEFAULT_MODEL
        elif name == "--max-turns" and value and value.isdigit():
            args.max_turns = int(value)
        elif name == "--session-id":
            args.session_id = value
        elif name == "--verbose":
            args.verbose = True
        elif name == "--dangerously-skip-permissions":
            args.skip_permissions = True
        elif name in ("--version", "-v"):
            print(f"{VERSION} (Claude Code)")
            sys.exit(0)
        elif not arg.startswith("-") and args.prompt is None:
            args.prompt = arg
        i += 1
    return args


# -- directives -------------------------------------------------------------------------------


def read_blocks(prompt: str) -> list[dict[str, Any]]:
    blocks = []
    for number, body in enumerate(_BLOCK.findall(prompt), 1):
        try:
            data = yaml.safe_load(body)
        except yaml.YAMLError as exc:
            raise DirectiveError(f"block {number} is not valid YAML: {exc}") from None
        if data is None:
            continue
        if not isinstance(data, dict):
            raise DirectiveError(f"block {number} must be a mapping, got {type(data).__name__}")
        unknown = set(data) - STITCH_KEYS - MEASURE_KEYS
        if unknown:
            raise DirectiveError(f"block {number} has unknown keys {sorted(unknown)}")
        blocks.append(data)
    return blocks


def _expect(value: Any, kind: type | tuple[type, ...], key: str) -> Any:
    if not isinstance(value, kind) or (
        isinstance(value, bool) and kind in (int, float, (int, float))
    ):
        raise DirectiveError(f"{key} has the wrong type ({type(value).__name__})")
    return value


def stitch_directives(blocks: list[dict[str, Any]], attempt: int) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in blocks:
        merged.update({k: v for k, v in block.items() if k in STITCH_KEYS})
    overrides = merged.pop("on_attempt", None) or {}
    _expect(overrides, dict, "on_attempt")
    for key, value in overrides.items():
        if str(key) == str(attempt):
            _expect(value, dict, f"on_attempt.{key}")
            merged.update(value)
    _validate_stitch(merged)
    return merged


def _validate_stitch(d: dict[str, Any]) -> None:
    for key in ("files", "append"):
        if key in d:
            for path, text in _expect(d[key], dict, key).items():
                _expect(text, str, f"{key}.{path}")
    if "delete" in d:
        for path in _expect(d["delete"], list, "delete"):
            _expect(path, str, "delete[]")
    for key in ("run", "detach"):
        if key in d:
            for cmd in _expect(d[key], list, key):
                _expect(cmd, str, f"{key}[]")
    for key in ("duration", "heartbeat"):
        if key in d:
            _expect(d[key], (int, float), key)
    if "cost_usd" in d:
        _expect(d["cost_usd"], (int, float), "cost_usd")
    if "tokens" in d:
        for key, value in _expect(d["tokens"], dict, "tokens").items():
            if key not in ("input", "output", "cache_read", "cache_creation"):
                raise DirectiveError(
                    f"tokens.{key} is not one of input, output, cache_read, cache_creation"
                )
            _expect(value, int, f"tokens.{key}")
    if d.get("outcome", "success") not in OUTCOMES:
        raise DirectiveError(f"outcome must be one of {', '.join(OUTCOMES)}")
    for key in ("exit_code", "api_error_status"):
        if key in d:
            _expect(d[key], int, key)


def measure_proposals(
    blocks: list[dict[str, Any]], prompt: str, limit: int
) -> tuple[list[dict[str, Any]], str]:
    """The proposals to write (existing titles filtered out, dependencies remapped) and how."""
    via = "file"
    raw: list[Any] = []
    found = False
    for block in blocks:
        if "propose" in block:
            found = True
            raw.extend(_expect(block["propose"], list, "propose"))
        if "propose_via" in block:
            via = block["propose_via"]
            if via not in ("file", "text", "none"):
                raise DirectiveError("propose_via must be file, text or none")
    existing = {t.strip() for t in _EXISTING.findall(prompt)}
    if not found:
        raw = _proposals_from_headings(prompt, existing)
    keep = [
        i
        for i, item in enumerate(raw)
        if not (isinstance(item, dict) and item.get("title") in existing)
    ]
    new_index = {old: new for new, old in enumerate(keep)}
    out = []
    for old in keep:
        item = raw[old]
        if not isinstance(item, dict):
            out.append(item)  # written verbatim: shoemaker's validation must catch it
            continue
        entry: dict[str, Any] = {"index": new_index[old]}
        if "title" in item:
            entry["title"] = item["title"]
        description = str(item.get("description", ""))
        if isinstance(item.get("rehearsal"), dict):
            dumped = yaml.dump(
                item["rehearsal"], Dumper=_BlockDumper, sort_keys=False, allow_unicode=True
            )
            description = f"{description.rstrip()}\n\n<!-- rehearsal\n{dumped}-->\n"
        entry["description"] = description
        deps = item.get("depends_on", item.get("dependency", []))
        deps = deps if isinstance(deps, list) else [deps]
        mapped = []
        for dep in deps:
            if dep in new_index:
                mapped.append(new_index[dep])
            elif not (isinstance(dep, int) and 0 <= dep < len(raw)) and dep != -1:
                mapped.append(dep)  # a bad index stays bad: shoemaker must refuse it
        entry["dependency"] = -1 if not mapped else mapped[0] if len(mapped) == 1 else mapped
        if "priority" in item:
            entry["priority"] = item["priority"]
        out.append(entry)
    return out[:limit] if not found else out, via


class _BlockDumper(yaml.SafeDumper):
    """Dumps multi-line strings as ``|`` blocks, so scripted file contents stay readable."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


def _proposals_from_headings(prompt: str, existing: set[str]) -> list[dict[str, Any]]:
    """Without directives: up to three tasks from the documents' headings, in a chain."""
    docs = prompt.split("\n## Documents", 1)[-1]
    titles = []
    for heading in _HEADING.findall(docs):
        title = heading.strip()
        if "/" in title or title.endswith(".md") or title in titles:
            continue
        if f"Implement {title}" not in existing:
            titles.append(title)
    return [
        {
            "title": f"Implement {t}",
            "description": f"Implement what the documents say under '{t}'.",
            "depends_on": [n - 1] if n else [],
        }
        for n, t in enumerate(titles[:3])
    ]


# -- output -----------------------------------------------------------------------------------


@dataclass
class Emitter:
    """Prints stream-json lines and keeps the bookkeeping a result line needs."""

    args: Args
    cwd: Path
    session_id: str
    step_delay: float = 0.0
    started: float = field(default_factory=time.monotonic)
    turns: int = 0
    tool_uses: int = 0
    message_id: str = ""

    def line(self, obj: dict[str, Any], delay: bool = True) -> None:
        if delay and self.step_delay:
            time.sleep(self.step_delay)
        sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def init(self) -> None:
        self.line(
            {
                "type": "system",
                "subtype": "init",
                "cwd": str(self.cwd),
                "session_id": self.session_id,
                "tools": TOOLS,
                "mcp_servers": [],
                "model": self.args.model,
                "permissionMode": "bypassPermissions" if self.args.skip_permissions else "default",
                "slash_commands": [],
                "apiKeySource": "none",
                "claude_code_version": VERSION,
                "output_style": "default",
                "agents": [],
                "skills": [],
                "plugins": [],
                "uuid": str(uuid.uuid4()),
            },
            delay=False,
        )

    def new_turn(self) -> None:
        self.turns += 1
        self.message_id = f"msg_rehearsal_{uuid.uuid4().hex[:20]}"

    def assistant(
        self, block: dict[str, Any], error: str | None = None, model: str | None = None
    ) -> None:
        if not self.message_id:
            self.new_turn()
        obj: dict[str, Any] = {
            "type": "assistant",
            "message": {
                "id": self.message_id,
                "type": "message",
                "role": "assistant",
                "model": model or self.args.model,
                "content": [block],
                "stop_reason": None,
                "stop_sequence": None,
                # Per-line usage is a placeholder, as in the real CLI: never final.
                "usage": {
                    "input_tokens": 4,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": 1,
                    "service_tier": "standard",
                },
            },
            "parent_tool_use_id": None,
            "session_id": self.session_id,
            "uuid": str(uuid.uuid4()),
        }
        if error:
            obj["error"] = error
        self.line(obj)

    def text(self, text: str) -> None:
        self.assistant({"type": "text", "text": text})

    def tool(self, name: str, tool_input: dict[str, Any], output: str, is_error: bool) -> None:
        self.tool_uses += 1
        tool_id = f"toolu_rehearsal_{uuid.uuid4().hex[:20]}"
        self.assistant({"type": "tool_use", "id": tool_id, "name": name, "input": tool_input})
        self.line(
            {
                "type": "user",
                "message": {
                    "role": "user",
                    "content": [
                        {
                            "tool_use_id": tool_id,
                            "type": "tool_result",
                            "content": output,
                            "is_error": is_error,
                        }
                    ],
                },
                "parent_tool_use_id": None,
                "session_id": self.session_id,
                "uuid": str(uuid.uuid4()),
                "tool_use_result": f"Error: {output}" if is_error else {"output": output[-2000:]},
            }
        )
        # The tool's result goes back to the model: what it says next is a new message.
        self.message_id = ""

    def result(
        self,
        directives: dict[str, Any],
        prompt: str,
        text: str,
        *,
        subtype: str = "success",
        is_error: bool = False,
        errors: list[str] | None = None,
        api_status: int | None = None,
        terminal: str = "completed",
    ) -> None:
        tokens = directives.get("tokens") or {}
        usage = {
            "input_tokens": tokens.get("input", max(1, len(prompt) // 4)),
            "cache_creation_input_tokens": tokens.get("cache_creation", 0),
            "cache_read_input_tokens": tokens.get("cache_read", 0),
            "output_tokens": tokens.get("output", 50 + 20 * self.tool_uses),
        }
        cost = directives.get("cost_usd")
        if cost is None:
            cost = (
                usage["input_tokens"] * PRICES[0]
                + usage["output_tokens"] * PRICES[1]
                + usage["cache_read_input_tokens"] * PRICES[2]
                + usage["cache_creation_input_tokens"] * PRICES[3]
            ) / 1e6
        elapsed = int((time.monotonic() - self.started) * 1000)
        obj: dict[str, Any] = {
            "type": "result",
            "subtype": subtype,
            "is_error": is_error,
            "duration_ms": elapsed,
            "duration_api_ms": int(elapsed * 0.8),
            "num_turns": max(1, self.turns),
            "session_id": self.session_id,
            "total_cost_usd": round(float(cost), 8),
            "usage": {
                **usage,
                "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                "service_tier": "standard",
            },
            "modelUsage": {
                self.args.model: {
                    "inputTokens": usage["input_tokens"],
                    "outputTokens": usage["output_tokens"],
                    "cacheReadInputTokens": usage["cache_read_input_tokens"],
                    "cacheCreationInputTokens": usage["cache_creation_input_tokens"],
                    "webSearchRequests": 0,
                    "costUSD": round(float(cost), 8),
                    "contextWindow": 200000,
                    "maxOutputTokens": 32000,
                }
            },
            "permission_denials": [],
            "terminal_reason": terminal,
            "stop_reason": "stop_sequence" if api_status else "end_turn",
            "uuid": str(uuid.uuid4()),
        }
        if errors is not None:
            obj["errors"] = errors
        else:
            obj["result"] = text
        if api_status is not None:
            obj["api_error_status"] = api_status
        self.line(obj, delay=False)


# -- actions ----------------------------------------------------------------------------------


def _inside(cwd: Path, rel: str) -> Path | None:
    target = (cwd / rel).resolve()
    root = cwd.resolve()
    return target if target == root or root in target.parents else None


def _plan(d: dict[str, Any]) -> list[tuple[str, str, Any]]:
    steps: list[tuple[str, str, Any]] = []
    steps += [("write", path, text) for path, text in (d.get("files") or {}).items()]
    steps += [("append", path, text) for path, text in (d.get("append") or {}).items()]
    steps += [("delete", path, None) for path in d.get("delete") or []]
    steps += [("run", cmd, None) for cmd in d.get("run") or []]
    steps += [("detach", cmd, None) for cmd in d.get("detach") or []]
    return steps


def _do(em: Emitter, kind: str, target: str, payload: Any) -> None:
    cwd = em.cwd
    if kind == "run":
        argv = shlex.split(target)
        try:
            proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
            output, failed = (proc.stdout + proc.stderr)[-4000:], proc.returncode != 0
            if failed:
                output = f"Exit code {proc.returncode}\n{output}"
        except OSError as exc:
            output, failed = f"{argv[0] if argv else target}: {exc.strerror}", True
        em.tool("Bash", {"command": target, "description": f"Run {target}"}, output, failed)
        return
    if kind == "detach":
        # Like a background command: only the command itself is waited for, never what it
        # leaves running (`setsid -f …`), and its output goes nowhere.
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
    path = _inside(cwd, target)
    if path is None:
        name = {"write": "Write", "append": "Edit", "delete": "Bash"}[kind]
        em.tool(
            name, {"file_path": target}, f"Refused: {target} is outside the working directory", True
        )
        return
    if kind == "write":
        existed = path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(payload, encoding="utf-8")
        verb = "updated" if existed else "created"
        em.tool(
            "Write",
            {"file_path": str(path), "content": payload},
            f"File {verb} successfully at: {path}",
            False,
        )
    elif kind == "append":
        path.parent.mkdir(parents=True, exist_ok=True)
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        path.write_text(old + payload, encoding="utf-8")
        em.tool(
            "Edit",
            {"file_path": str(path), "old_string": old[-200:], "new_string": old[-200:] + payload},
            f"The file {path} has been updated.",
            False,
        )
    else:
        existed = path.exists()
        if existed:
            path.unlink()
        em.tool(
            "Bash",
            {"command": f"rm {shlex.quote(target)}", "description": f"Delete {target}"},
            "" if existed else f"rm: cannot remove '{target}': No such file or directory",
            not existed,
        )


def _sleep_forever() -> NoReturn:
    while True:
        time.sleep(3600)


def _hang(em: Emitter, heartbeat: float) -> NoReturn:
    """Never finish: silent, or with a status line every ``heartbeat`` seconds (a run that
    looks alive to an idle watchdog but never ends)."""
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
                "uuid": str(uuid.uuid4()),
            },
            delay=False,
        )


def _on_sigterm(signum: int, frame: object) -> None:
    # The real CLI exits 143 on SIGTERM without a result line.
    sys.stdout.flush()
    os._exit(143)


def run(args: Args, prompt: str, cwd: Path) -> int:
    """Act out one invocation; returns the exit code."""
    em = Emitter(args, cwd, args.session_id or str(uuid.uuid4()))
    measure = _MEASURE.search(prompt)
    stitch = _STITCH.search(prompt)
    attempt = int(stitch.group(2)) if stitch else 1

    def on_sigint(signum: int, frame: object) -> None:
        em.line(
            {
                "type": "user",
                "message": {
                    "role": "user",
                    "content": [{"type": "text", "text": "[Request interrupted by user]"}],
                },
                "parent_tool_use_id": None,
                "session_id": em.session_id,
                "uuid": str(uuid.uuid4()),
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
        out_path = Path(measure.group(1))
        out_path = out_path if out_path.is_absolute() else cwd / out_path
        steps: list[tuple[str, str, Any]] = []
        if via == "file":
            steps = [("proposals", str(out_path), json.dumps(proposals, indent=2))]
        final = directives.get("text") or f"Proposed {len(proposals)} tasks."
        if via == "text":
            final += "\n\n```yaml\n" + yaml.safe_dump(proposals, sort_keys=False) + "```\n"
    else:
        steps = _plan(directives)
        final = directives.get("text") or _default_stitch(directives, steps, prompt, stitch)
    total = len(steps) * 2 + 2
    em.step_delay = float(directives.get("duration", 0)) / total if total else 0.0

    em.init()
    if outcome == "hang":
        _hang(em, float(directives.get("heartbeat", 0)))
    if outcome == "malformed":
        for junk in (
            "Loading configuration…",
            '{"type": "assistant", "message": {"id": "msg_tr',
            "[object Object]",
            "\x1b[31mwarning\x1b[0m: unexpected token",
        ):
            sys.stdout.write(junk + "\n")
            sys.stdout.flush()
        return int(directives.get("exit_code", 0))
    if outcome == "api_error":
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
                    "uuid": str(uuid.uuid4()),
                    "session_id": em.session_id,
                }
            )
        message = f'API Error: {status} {{"type":"error","error":{{"type":"{kind}"}}}}'
        em.new_turn()
        em.assistant({"type": "text", "text": message}, error=kind, model="<synthetic>")
        em.result(
            directives, prompt, message, is_error=True, api_status=status, terminal="api_error"
        )
        return int(directives.get("exit_code", 1))

    em.text(
        "Reading the task and the repository."
        if not measure
        else "Reading the documents and the existing tasks."
    )
    half = len(steps) // 2
    for number, (kind, target, payload) in enumerate(steps):
        if number == half and outcome in ("crash", "sigterm"):
            break
        if kind == "proposals":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            Path(target).write_text(payload, encoding="utf-8")
            em.tool(
                "Write",
                {"file_path": target, "content": payload},
                f"File created successfully at: {target}",
                False,
            )
        else:
            _do(em, kind, target, payload)
    if outcome == "crash":
        sys.stderr.write(
            "TypeError: Cannot read properties of undefined (reading 'input_tokens')\n"
            "    at processResult (file:///rehearsal/cli.js:1:1)\n"
        )
        return int(directives.get("exit_code", 1))
    if outcome == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
        _sleep_forever()
    em.text(final)
    if outcome == "max_turns":
        limit = args.max_turns or 1
        em.result(
            directives,
            prompt,
            final,
            subtype="error_max_turns",
            is_error=True,
            errors=[f"Reached maximum number of turns ({limit})"],
            terminal="max_turns",
        )
        return int(directives.get("exit_code", 1))
    em.result(directives, prompt, final)
    return int(directives.get("exit_code", 0))


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
    steps.extend(_plan(directives))
    return f"Wrote rehearsal/task-{task}.md for {name}."


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.output_format == "stream-json" and not args.verbose:
        sys.stderr.write(
            "Error: When using --print, --output-format=stream-json requires --verbose\n"
        )
        return 1
    if args.skip_permissions and os.geteuid() == 0 and os.environ.get("IS_SANDBOX") != "1":
        sys.stderr.write(
            "--dangerously-skip-permissions cannot be used with root/sudo privileges for "
            "security reasons\n"
        )
        return 1
    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    if args.output_format != "stream-json":
        return _plain(args, prompt)
    return run(args, prompt, Path.cwd())


def _plain(args: Args, prompt: str) -> int:
    """``--output-format text|json``: act the same, print only the final result."""
    real_stdout = sys.stdout
    lines: list[str] = []

    class Capture:
        def write(self, text: str) -> None:
            lines.append(text)

        def flush(self) -> None:
            pass

    sys.stdout = Capture()
    try:
        code = run(args, prompt, Path.cwd())
    finally:
        sys.stdout = real_stdout
    results = [
        json.loads(x) for x in "".join(lines).splitlines() if x.startswith('{"type": "result"')
    ]
    if results:
        last = results[-1]
        print(json.dumps(last) if args.output_format == "json" else last.get("result", ""))
    return code


if __name__ == "__main__":
    sys.exit(main())
