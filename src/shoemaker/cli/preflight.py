"""Getting a repository ready: ``init`` writes the configuration, ``doctor`` checks the setup."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shoemaker.cli.common import _open_project
from shoemaker.cli.output import _console, _esc
from shoemaker.errors import EXIT_FAILED


def cmd_init(args: argparse.Namespace) -> int:
    from shoemaker.config import default_config_text, write_default_config

    if args.print:
        sys.stdout.write(default_config_text())
        return 0
    path = write_default_config(Path(args.directory), force=args.force)
    print(f"wrote {path}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """The preflight checklist; exit 1 when a check fails."""
    from shoemaker.engine.doctor import cluster_checks, run_checks

    project = _open_project(args)
    console = _console()
    checks = run_checks(project)
    if all(c.ok for c in checks if c.name == "executor"):
        checks += cluster_checks(project)
    for check in checks:
        mark = "[green]✓[/]" if check.ok else "[bold red]✗[/]"
        console.print(f"{mark} [b]{check.name}[/]: {_esc(check.detail)}", highlight=False)
        if not check.ok:
            console.print(f"    fix: {_esc(check.fix)}")
    failed = sum(1 for c in checks if not c.ok)
    console.print("all checks passed" if not failed else f"{failed} check(s) failed")
    return EXIT_FAILED if failed else 0
