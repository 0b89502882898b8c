"""Write docs/dashboard.svg: the dashboard in the middle of the demo generation.

    uv run python scripts/dashboard_screenshot.py

The demo runs for real (rehearsal agent, pytest gates) in a temporary directory; the picture
is taken once three of its six tasks have merged.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from shoemaker.demo import prepare_demo
from shoemaker.engine.project import Project
from shoemaker.tui.app import ShoemakerApp

OUT = Path(__file__).resolve().parents[1] / "docs" / "dashboard.svg"


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="shoemaker-shot-") as tmp:
        repo = prepare_demo(Path(tmp) / "textkit", worktree_dir=str(Path(tmp) / "worktrees"))
        app = ShoemakerApp(Project.open(repo), demo=True)
        async with app.run_test(size=(160, 48)) as pilot:
            while app.snapshot.totals.done < 3 or not app.output.line_count:
                await pilot.pause(0.05)
            await pilot.pause(0.3)
            app.save_screenshot(str(OUT))
            await pilot.press("q")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
