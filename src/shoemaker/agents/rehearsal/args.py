"""The claude CLI's command line as the rehearsal agent reads it."""

from __future__ import annotations

import sys

VERSION = "2.1.197-rehearsal"
DEFAULT_MODEL = "claude-sonnet-4-5-rehearsal"

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


class Args:
    """The command line the agent was given (a plain class: it starts without dataclasses,
    whose import pulls in inspect and ast)."""

    def __init__(self) -> None:
        self.output_format = "text"
        self.verbose = False
        self.model = DEFAULT_MODEL
        self.max_turns: int | None = None
        self.session_id: str | None = None
        self.skip_permissions = False
        self.prompt: str | None = None


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
