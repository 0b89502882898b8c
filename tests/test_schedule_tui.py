"""The dashboard shows the schedules: next fire time (the daemon's) and the last batch."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from textual.widgets import DataTable

from shoemaker.engine.schedule_state import record_batch, record_daemon
from shoemaker.events import BatchFinished
from shoemaker.tui.app import ShoemakerApp
from shoemaker.tui.screens import GenerationsScreen
from tui_data import CLOCK, fixed_project

SIZE = (120, 36)


async def test_the_generations_screen_lists_schedules_with_next_fire_and_last_batch(
    fast_tmp: Path,
) -> None:
    project = fixed_project(
        fast_tmp,
        timezone="Europe/Berlin",
        schedules=[
            {"name": "nightly", "cron": "30 2 * * *"},
            {"name": "hourly", "cron": "0 * * * *", "timezone": "UTC"},
        ],
    )
    fire = datetime(2030, 1, 2, 1, 30, tzinfo=UTC).timestamp()  # 02:30 in Berlin
    record_daemon(project.state_dir, os.getpid(), {"nightly": fire}, CLOCK)
    record_batch(
        project.state_dir,
        BatchFinished(
            ts=CLOCK,
            generation="g1",
            schedule="nightly",
            outcome="finished",
            reason="max_tasks reached (2 task(s) started)",
            tasks_done=2,
            tasks_failed=1,
        ),
    )
    app = ShoemakerApp(project, clock=lambda: CLOCK)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("G")
        assert isinstance(app.screen, GenerationsScreen)
        table = app.screen.query_one("#schedules-table", DataTable)
        nightly = [str(c) for c in table.get_row_at(0)]
        assert nightly[:3] == ["nightly", "30 2 * * *", "2030-01-02 02:30 Europe/Berlin (CET)"]
        assert nightly[3].startswith("finished ")
        assert nightly[3].endswith(": 2 done, 1 failed (max_tasks reached (2 task(s) started))")
        hourly = [str(c) for c in table.get_row_at(1)]
        # Not in the daemon's plan: when its cron fires next, in its own zone.
        next_hour = datetime.fromtimestamp(CLOCK - CLOCK % 3600 + 3600, UTC)
        assert hourly[2] == f"{next_hour:%Y-%m-%d %H:%M} UTC (UTC)"
        assert hourly[3] == "—"
        assert table.border_subtitle == "the schedule daemon fires them"
