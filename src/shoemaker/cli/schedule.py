"""``shoemaker schedule list|run|daemon|install``: scheduled batches from the command line."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING

from shoemaker.cli.common import CliError, _attach_output, _open_project, _run_async
from shoemaker.cli.output import _console, _esc

if TYPE_CHECKING:
    from shoemaker.config.schedules import ScheduleConfig
    from shoemaker.engine.batch import BatchResult
    from shoemaker.engine.project import Project


def _schedule(project: Project, name: str) -> ScheduleConfig:
    for schedule in project.config.schedules:
        if schedule.name == name:
            return schedule
    known = ", ".join(s.name for s in project.config.schedules) or "none is configured"
    raise CliError(f"no schedule named {name!r} in configuration.yaml ({known})")


def cmd_schedule_list(args: argparse.Namespace) -> int:
    from shoemaker.engine.cron import fire_times, schedule_zone, shown
    from shoemaker.engine.schedule_state import daemon_pid, read_state, schedule_rows

    project = _open_project(args)
    cfg, now = project.config, time.time()
    rows = schedule_rows(cfg, project.state_dir, now)
    daemon = daemon_pid(read_state(project.state_dir))
    if args.json:
        out = []
        for schedule, row in zip(cfg.schedules, rows, strict=True):
            zone = schedule_zone(cfg, schedule)
            out.append(
                {
                    "name": row.name,
                    "cron": row.cron,
                    "timezone": row.zone,
                    "next": [t.isoformat() for t in fire_times(row.cron, zone, now, args.count)],
                    "daemon": daemon,
                    "last": row.last,
                }
            )
        print(json.dumps(out, indent=1))
        return 0
    console = _console()
    console.soft_wrap = True
    if not rows:
        console.print("no schedules: add them under `schedules:` in configuration.yaml")
        return 0
    console.print(
        f"schedule daemon: pid {daemon}"
        if daemon
        else "no schedule daemon runs for this "
        "repository (`shoemaker schedule daemon`, or `shoemaker schedule install`)"
    )
    for schedule, row in zip(cfg.schedules, rows, strict=True):
        zone = schedule_zone(cfg, schedule)
        limits = [f"{schedule.cycles} cycle(s)", f"generation {schedule.generation}"]
        if schedule.max_tasks:
            limits.append(f"max_tasks {schedule.max_tasks}")
        if schedule.max_duration:
            from shoemaker.engine.batch import duration_text

            limits.append(f"max_duration {duration_text(schedule.max_duration)}")
        console.print(
            f"[bold]{_esc(row.name)}[/]  {_esc(row.cron)}  in {_esc(row.zone)}  "
            f"({_esc(', '.join(limits))})"
        )
        for moment in fire_times(row.cron, zone, now, args.count):
            console.print(f"  next {_esc(shown(moment))}")
        if row.last:
            console.print(f"  last {_esc(row.last)}")
    return 0


def _print_result(console: object, result: BatchResult) -> None:
    from rich.console import Console

    assert isinstance(console, Console)
    e = result.event
    where = f" on generation {e.generation}" if e.generation else ""
    console.print(
        f"batch {_esc(e.schedule)} {e.outcome}{_esc(where)}: {e.tasks_done} task(s) done, "
        f"{e.tasks_failed} failed ({_esc(e.reason)})",
        soft_wrap=True,
    )


def cmd_schedule_run(args: argparse.Namespace) -> int:
    project = _open_project(args)
    schedule = _schedule(project, args.name)
    console = _attach_output(project, args.events, show_agent=not project.config.silence_agent)

    async def go() -> int:
        from shoemaker.engine.batch import Batch

        result = await Batch(project, schedule).run()
        _print_result(console, result)
        return result.exit_code

    return _run_async(go())


def cmd_schedule_daemon(args: argparse.Namespace) -> int:
    from shoemaker.engine.schedule_daemon import ScheduleDaemon

    project = _open_project(args)
    console = _attach_output(project, args.events, show_agent=not project.config.silence_agent)
    daemon = ScheduleDaemon(project, on_batch=lambda r: _print_result(console, r))

    async def go() -> int:
        how = await daemon.run()
        console.print(f"schedule daemon {how} after {daemon.batches} batch(es)")
        return 0

    return _run_async(go())


def cmd_schedule_install(args: argparse.Namespace) -> int:
    from shoemaker.engine.schedule_install import (
        InstallError,
        crontab_lines,
        systemd_units,
        user_unit_dir,
        write_units,
    )

    project = _open_project(args)
    cfg = project.config
    chosen = [_schedule(project, args.name)] if args.name else list(cfg.schedules)
    if not chosen:
        raise CliError("configuration.yaml has no schedules: add one under `schedules:` first")
    if args.write:
        # Every unit is made before anything is written: one that cannot be leaves nothing.
        units = [systemd_units(project.root, cfg, s) for s in chosen]
        paths = write_units(units)
        for path in paths:
            print(f"wrote {path}")
        timers = " ".join(u.timer_name for u in units)
        print(
            f"enable them with: systemctl --user daemon-reload && "
            f"systemctl --user enable --now {timers}"
        )
        return 0
    print("# crontab lines (add them with `crontab -e`; shoemaker never edits a crontab):")
    for schedule in chosen:
        print("\n".join(crontab_lines(project.root, cfg, schedule)))
    print()
    print(f"# or systemd user units ({user_unit_dir()}; `--write` writes them there):")
    for schedule in chosen:
        try:
            unit = systemd_units(project.root, cfg, schedule)
        except InstallError as exc:
            print(f"# --- {schedule.name}: no systemd timer: {exc}")
            continue
        print(f"# --- {unit.service_name}\n{unit.service}")
        print(f"# --- {unit.timer_name}\n{unit.timer}")
    return 0
