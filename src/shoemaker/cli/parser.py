"""The argparse tree: every command, its options and the function that runs it."""

from __future__ import annotations

import argparse

from shoemaker.cli.dashboard import cmd_tui
from shoemaker.cli.demo import cmd_demo
from shoemaker.cli.done import cmd_done
from shoemaker.cli.gc import cmd_gc
from shoemaker.cli.lifecycle import (
    _lifecycle,
    _pause,
    _reset,
    _start,
    _stop,
    _switch,
    cmd_generation_list,
)
from shoemaker.cli.notify import cmd_notify_test
from shoemaker.cli.plan_sources import cmd_plan_check, cmd_tasks_export, cmd_tasks_import
from shoemaker.cli.plans import _plan_verb, cmd_estimate, cmd_plan
from shoemaker.cli.preflight import cmd_doctor, cmd_init
from shoemaker.cli.review import cmd_review
from shoemaker.cli.run import cmd_measure, cmd_run
from shoemaker.cli.schedule import (
    cmd_schedule_daemon,
    cmd_schedule_install,
    cmd_schedule_list,
    cmd_schedule_run,
)
from shoemaker.cli.tasks import _retry, _revert, cmd_tasks
from shoemaker.cli.transcript import cmd_transcript
from shoemaker.cli.web import cmd_web

EXIT_CODES = (
    "exit codes: 0 success; 1 the work failed (an agent, a gate, a merge, measure); 2 bad "
    "input; 3 a budget paused the generation (`shoemaker list` says which); 130/143 "
    "interrupted"
)


def build_parser() -> argparse.ArgumentParser:
    from shoemaker import __version__

    parser = argparse.ArgumentParser(
        prog="shoemaker",
        description="Turn a spec-driven repository into a software factory run by coding agents.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"shoemaker {__version__}")
    parser.add_argument(
        "-C",
        dest="directory",
        default=".",
        metavar="DIR",
        help="run as if started in DIR (like git -C)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("init", help="write a commented default configuration.yaml")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument("--print", action="store_true", help="print the default instead of writing it")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("transcript", help="summarise a stream-json transcript file")
    p.add_argument("file")
    p.add_argument(
        "--agent",
        choices=["claude", "codex", "gemini"],
        default="claude",
        help="the CLI that printed it (default: claude; codex: `codex exec --json`; gemini: "
        "`gemini -o stream-json`)",
    )
    p.add_argument(
        "--model",
        default="",
        help="price a stream that reports no cost (codex, gemini) as this model, at the "
        "`prices` of "
        "configuration.yaml (default: its agent.model)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=cmd_transcript)

    def add_events(p: argparse.ArgumentParser, default: str = "story") -> None:
        p.add_argument(
            "--events",
            choices=["story", "ndjson", "none"],
            default=default,
            help="story: a readable log; ndjson: one event per line on stdout; none "
            f"(default: {default})",
        )

    def add_plan_paths(p: argparse.ArgumentParser) -> None:
        p.add_argument("paths", nargs="+", metavar="PATH", help="plan files or directories")
        p.add_argument(
            "--format",
            choices=["auto", "epics", "phases", "beads", "measure"],
            default="auto",
            help="the plans' format (default: from each path)",
        )

    # The lifecycle verbs, also reachable as `shoemaker generation VERB`.
    gen = sub.add_parser(
        "generation", help="start, pause, stop, reset, switch, list: the same verbs, grouped"
    )
    gsub = gen.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verbs in (sub, gsub):
        p = verbs.add_parser(
            "start", help="tag the base, create the generation branch, check it out"
        )
        p.add_argument("name", nargs="?", help="generation name (default: a timestamp)")
        p.set_defaults(func=_lifecycle(_start))
        p = verbs.add_parser(
            "pause", help="let running agents finish, start no new task; resume goes on"
        )
        p.set_defaults(func=_lifecycle(_pause))
        p = verbs.add_parser("stop", help="tag, merge the generation into its base, tag again")
        p.set_defaults(func=_lifecycle(_stop))
        p = verbs.add_parser(
            "reset", help="abandon a generation: tag it, remove its branches and worktrees"
        )
        p.add_argument("name", nargs="?", help="the generation (default: the current one)")
        p.set_defaults(func=_lifecycle(_reset))
        p = verbs.add_parser("switch", help="check out another open generation")
        p.add_argument("name", help="the generation's name or branch")
        p.set_defaults(func=_lifecycle(_switch))
        p = verbs.add_parser("list", help="all generations with their state and progress")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_generation_list)

    for verb, text in (
        ("run", "run measure+stitch cycles on the current generation"),
        ("resume", "after a pause or a crash: recover what was left, then run"),
    ):
        p = sub.add_parser(verb, help=text)
        p.add_argument(
            "--cycles", type=int, help="at most N cycles (default: configuration cycles)"
        )
        p.add_argument("--parallel", type=int, help="agents at once (default: max_parallel)")
        add_events(p)
        p.add_argument(
            "--only", type=int, nargs="+", default=[], metavar="ID", help="run only these tasks"
        )
        p.add_argument(
            "--skip", type=int, nargs="+", default=[], metavar="ID", help="never run these"
        )
        p.add_argument(
            "--from", dest="start", type=int, metavar="ID", help="run this task and later ones"
        )
        p.set_defaults(func=cmd_run)

    p = sub.add_parser("schedule", help="scheduled batches: list, run, daemon, install")
    ssub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    r = ssub.add_parser("list", help="each schedule with its next fire times, in its time zone")
    r.add_argument("--count", type=int, default=3, help="fire times shown per schedule")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_schedule_list)
    r = ssub.add_parser("run", help="one batch of a schedule now, within its limits")
    r.add_argument("name", help="the schedule's name")
    add_events(r)
    r.set_defaults(func=cmd_schedule_run)
    r = ssub.add_parser(
        "daemon", help="fire the schedules' batches, one at a time, until SIGINT/SIGTERM"
    )
    add_events(r)
    r.set_defaults(func=cmd_schedule_daemon)
    r = ssub.add_parser(
        "install", help="print crontab lines and systemd user units that run the schedules"
    )
    r.add_argument("name", nargs="?", help="one schedule (default: all)")
    r.add_argument(
        "--write", action="store_true", help="write the systemd user units (never a crontab)"
    )
    r.set_defaults(func=cmd_schedule_install)

    p = sub.add_parser("measure", help="propose tasks once, without stitching")
    add_events(p)
    p.set_defaults(func=cmd_measure)

    p = sub.add_parser("review", help="tasks waiting for review: list, approve, reject")
    rsub = p.add_subparsers(dest="verb", metavar="VERB")
    p.set_defaults(func=cmd_review, verb=None)
    r = rsub.add_parser("approve", help="merge a task that waits for review")
    r.add_argument("task", type=int)
    r.set_defaults(func=cmd_review)
    r = rsub.add_parser("reject", help="send a task back to its agent with a note")
    r.add_argument("task", type=int)
    r.add_argument("--note", required=True, help="what to change; it goes into the next prompt")
    r.set_defaults(func=cmd_review)

    p = sub.add_parser(
        "plan", help="measure into a reviewable plan file with its estimate; nothing runs"
    )
    add_events(p, default="none")
    p.set_defaults(func=cmd_plan, verb=None)
    psub = p.add_subparsers(dest="verb", metavar="VERB")
    r = psub.add_parser("list", help="the plans of the current generation and their states")
    r.set_defaults(func=cmd_plan)
    r = psub.add_parser("reject", help="reject a plan; its tasks are cancelled")
    r.add_argument("plan", help="the plan's id or file")
    r.add_argument("--note", help="why")
    r.set_defaults(func=_lifecycle(_plan_verb))
    r = psub.add_parser("rollback", help="revert the merged tasks of a failed or complete plan")
    r.add_argument("plan", help="the plan's id or file")
    r.set_defaults(func=_lifecycle(_plan_verb))
    r = psub.add_parser(
        "check", help="parse and check plan files (epics, beads, measure), touching nothing"
    )
    add_plan_paths(r)
    r.set_defaults(func=cmd_plan_check)
    p = sub.add_parser("approve", help="approve a plan, so that run executes its tasks")
    p.add_argument("plan", help="the plan's id or file")
    p.set_defaults(func=_lifecycle(_plan_verb), verb="approve")

    p = sub.add_parser("doctor", help="preflight: git, the agent CLI, credentials, directories")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser(
        "gc", help="list worktrees and task/attempt branches no open generation owns"
    )
    p.add_argument("--yes", action="store_true", help="remove them (default: only list them)")
    p.set_defaults(func=cmd_gc)

    p = sub.add_parser("estimate", help="expected tokens and dollars of the tasks still to run")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("task", help="act on one task")
    tsub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    r = tsub.add_parser(
        "revert",
        help="revert a merged task on the generation branch (refused if others build on it)",
    )
    r.add_argument("task", type=int)
    r.add_argument("--retry", action="store_true", help="then run it again (default: cancel it)")
    r.set_defaults(func=_lifecycle(_revert))
    r = tsub.add_parser(
        "retry", help="run a failed, blocked or conflict task again, with a fresh max_retries"
    )
    r.add_argument("task", type=int, nargs="+", help="its id; several run in dependency order")
    r.add_argument("--note", default="", help="for its agent: it goes into the next prompt")
    r.set_defaults(func=_lifecycle(_retry))

    p = sub.add_parser(
        "done", help="inside a task's run: the agent signals the task completed or blocked"
    )
    p.add_argument("--status", choices=["completed", "blocked"], default="completed")
    p.add_argument("--reason", help="what a person must do or decide (required when blocked)")
    p.set_defaults(func=cmd_done)

    p = sub.add_parser("tasks", help="the tasks of the current generation; import, export")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tasks, verb=None)
    tsub = p.add_subparsers(dest="verb", metavar="VERB")
    r = tsub.add_parser(
        "import", help="add the tasks of plan files (epics, beads, measure), keeping their ids"
    )
    add_plan_paths(r)
    r.add_argument("--dry-run", action="store_true", help="say what would change; change nothing")
    r.set_defaults(func=cmd_tasks_import)
    r = tsub.add_parser("export", help="write the generation's tasks as beads issues")
    r.add_argument("--format", choices=["beads"], default="beads")
    r.add_argument("file", nargs="?", help="where to write (default: standard output)")
    r.set_defaults(func=cmd_tasks_export)

    p = sub.add_parser("notify", help="notifications: try the configured channels")
    nsub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    r = nsub.add_parser("test", help="send one message to each channel of `notify:`; report each")
    r.set_defaults(func=cmd_notify_test)

    p = sub.add_parser("tui", help="the dashboard (also what `shoemaker` alone opens)")
    p.add_argument(
        "--attach",
        action="store_true",
        help="follow a run that another process drives (pause, kill and review it from here)",
    )
    p.add_argument("--parallel", type=int, help="agents at once (default: max_parallel)")
    p.set_defaults(func=cmd_tui)

    p = sub.add_parser("web", help="the dashboard in a browser, and a JSON status at /api/status")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; any other needs the token it prints)",
    )
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("demo", help="build a sample repository and run a whole generation on it")
    p.add_argument("--headless", action="store_true", help="print the story instead of a dashboard")
    p.add_argument("--dir", help="create the demo repository here (default: a new temp dir)")
    p.add_argument("--prepare", metavar="DIR", help="only create and configure the repository")
    p.add_argument("--parallel", type=int, help="agents at once")
    p.add_argument(
        "--plan",
        choices=["epics", "phases", "beads"],
        help="take the tasks from a plan file of this format instead of measure",
    )
    p.add_argument(
        "--snags",
        action="store_true",
        help="also propose a task that waits for review and one whose gate fails",
    )
    p.add_argument(
        "--agent",
        choices=["rehearsal", "codex", "gemini"],
        default="rehearsal",
        help="the agent CLI (default: the rehearsal agent); codex or gemini without their "
        "credentials talk to a loopback mock of their API",
    )
    p.set_defaults(func=cmd_demo)
    return parser
