"""``done``: the agent's own completion signal, from inside its run (any sandbox)."""

from __future__ import annotations

import argparse
import os


def cmd_done(args: argparse.Namespace) -> int:
    from shoemaker.agents.done_signal import TASK_ENV, write_signal

    write_signal(os.environ, args.status, args.reason or "")
    print(f"shoemaker: task {os.environ[TASK_ENV]} signalled {args.status}")
    return 0
