"""The ``shoemaker`` command line.

Imports are deferred into each command so that ``shoemaker --help`` stays fast and never loads
Textual. Exit codes: 0 success, 1 the work failed (an agent, a merge, measure), 2 bad input
(configuration, arguments, a refused lifecycle verb), 3 a budget paused the generation and
ended the run, 130/143 interrupted.

The commands live by job: ``parser`` (the argparse tree), ``common`` (opening the project,
running a coroutine under signals), ``output`` (tables and printing), and one module per group
of commands.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from shoemaker.cli.common import CliError
from shoemaker.cli.parser import build_parser
from shoemaker.errors import EXIT_BAD_INPUT, EXIT_FAILED, ShoemakerError, one_line

__all__ = ["CliError", "build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        # No command: the dashboard on the current repository.
        args = parser.parse_args([*(argv or sys.argv[1:]), "tui"])
    for name in ("cycles", "parallel"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            parser.error(f"--{name} must be at least 1")
    if not Path(args.directory).is_dir():
        print(f"shoemaker: -C {args.directory}: no such directory", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        code: int = args.func(args)
    except ShoemakerError as exc:
        print(f"shoemaker: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `shoemaker run --events ndjson | head` closes the pipe; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: one line here, the traceback in a log file
        return _report_bug(exc, args, list(argv if argv is not None else sys.argv[1:]))
    return code


def _report_bug(exc: Exception, args: argparse.Namespace, argv: list[str]) -> int:
    """The last resort: one line on the terminal, the traceback in a log file."""
    from shoemaker.crashlog import write_crash_log
    from shoemaker.errors import clip

    command = " ".join(c for c in (args.command, getattr(args, "verb", None)) if c)
    log = write_crash_log(exc, argv)
    where = f"details in {log}" if log else "no log file could be written"
    print(
        f"shoemaker: `{command}` failed: {type(exc).__name__}: {clip(str(exc), 160)} — "
        f"this is a bug in shoemaker; {where}",
        file=sys.stderr,
    )
    return EXIT_FAILED
