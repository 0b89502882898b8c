"""``notify test``: one message to each configured channel, and how each went."""

from __future__ import annotations

import argparse

from shoemaker.cli.common import CliError, _open_project
from shoemaker.cli.output import _console, _esc
from shoemaker.errors import EXIT_FAILED


def cmd_notify_test(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from shoemaker.notify import trial_message

    project = _open_project(args)
    notifier = project.notifier
    if notifier is None:
        raise CliError(
            "no notification channel is configured: add `notify:` with an apprise URL to "
            "configuration.yaml (README: Notifications), e.g. notify: [{url: ntfy://ntfy.sh/TOPIC}]"
        )
    message = trial_message(project.root.name)
    # All at once: an unreachable channel costs its timeout once, not once per channel.
    with ThreadPoolExecutor(max_workers=len(notifier.channels)) as pool:
        outcomes = list(pool.map(lambda c: c.send(message), notifier.channels))
    console = _console()
    for outcome in outcomes:
        mark = "[green]ok[/]" if outcome.ok else "[red]failed[/]"
        console.print(f"{mark} {_esc(outcome.line())}", soft_wrap=True)
    return 0 if all(o.ok for o in outcomes) else EXIT_FAILED


__all__ = ["cmd_notify_test"]
