"""Stream-json lines as the claude CLI prints them: init, assistant, tool use and result."""

from __future__ import annotations

import json
import os
import sys
import time

from shoemaker.agents.rehearsal.args import VERSION, Args

# Not typing's: the agent starts without importing typing (PYTHONPROFILEIMPORTTIME, tests).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from os import PathLike
    from typing import Any


def new_uuid() -> str:
    """A random (version 4) UUID as text, without importing ``uuid`` (and ``platform``,
    which it imports): a few milliseconds of every run's start."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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


class Emitter:
    """Prints stream-json lines and keeps the bookkeeping a result line needs."""

    def __init__(
        self, args: Args, cwd: str | PathLike[str], session_id: str, step_delay: float = 0.0
    ) -> None:
        self.args = args
        self.cwd = os.fspath(cwd)
        """The working directory, as a string: the agent starts without pathlib."""
        self.session_id = session_id
        self.step_delay = step_delay
        self.started = time.monotonic()
        self.turns = 0
        self.tool_uses = 0
        self.message_id = ""

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
                "cwd": self.cwd,
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
                "uuid": new_uuid(),
            },
            delay=False,
        )

    def rate_limit_event(self, status: str, resets_at: float | None) -> None:
        """The line a subscription login prints about its usage limit, as the CLI does."""
        info: dict[str, Any] = {"status": status, "rateLimitType": "five_hour"}
        if resets_at is not None:
            info["resetsAt"] = resets_at
        info["isUsingOverage"] = False
        self.line(
            {
                "type": "rate_limit_event",
                "rate_limit_info": info,
                "uuid": new_uuid(),
                "session_id": self.session_id,
            }
        )

    def new_turn(self) -> None:
        self.turns += 1
        self.message_id = f"msg_rehearsal_{os.urandom(10).hex()}"

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
            "uuid": new_uuid(),
        }
        if error:
            obj["error"] = error
        self.line(obj)

    def text(self, text: str) -> None:
        self.assistant({"type": "text", "text": text})

    def tool(self, name: str, tool_input: dict[str, Any], output: str, is_error: bool) -> None:
        self.tool_uses += 1
        tool_id = f"toolu_rehearsal_{os.urandom(10).hex()}"
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
                "uuid": new_uuid(),
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
            "uuid": new_uuid(),
        }
        if errors is not None:
            obj["errors"] = errors
        else:
            obj["result"] = text
        if api_status is not None:
            obj["api_error_status"] = api_status
        self.line(obj, delay=False)
