"""How long the command line takes to answer.

    uv run python benchmarks/startup.py [--runs 15]

Times, as a person runs them from a shell, ``shoemaker --help`` and ``shoemaker tasks`` in a
repository with a store, a generation and six tasks (the demo repository with its plan file
imported). The baseline, measured in the same run: the interpreter starting and exiting
(``python -c pass``). The commands are run interleaved (one of each per round), so that a
machine getting busier or quieter weighs on all of them alike; the figures are medians.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The wall time each command should stay under on an idle machine.
GOAL_SEC = 0.2


def shoemaker_argv() -> list[str]:
    """The installed ``shoemaker`` script next to this interpreter, as a shell would run it."""
    script = Path(sys.executable).with_name("shoemaker")
    return [str(script)] if script.exists() else [sys.executable, "-m", "shoemaker"]


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    argv = shoemaker_argv()
    for args in (
        ["demo", "--prepare", str(repo), "--plan", "epics"],
        ["-C", str(repo), "generation", "start", "bench"],
        ["-C", str(repo), "tasks", "import", "docs/plans"],
    ):
        subprocess.run([*argv, *args], check=True, capture_output=True, env=ENV)
    return repo


#: As installed: bytecode is written on the first run and read on the others (an environment
#: that forbids writing it would time the compiler instead).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"COLUMNS": "120"}


def timed(argv: list[str], cwd: Path) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, env=ENV)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    argv = shoemaker_argv()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "shoemaker --help": [*argv, "--help"],
        "shoemaker tasks": [*argv, "tasks"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    with tempfile.TemporaryDirectory(prefix="shoemaker-bench-", dir=base) as tmp:
        repo = make_repo(Path(tmp))
        for command in commands.values():  # once each first: caches, bytecode
            timed(command, repo)
        for _ in range(args.runs):
            for name, command in commands.items():
                wall, used = timed(command, repo)
                times[name].append(wall)
                cpu[name].append(used)
    load = os.getloadavg()[0]
    print(f"runs: {args.runs} per command, interleaved (medians); load average {load:.1f}")
    baseline = statistics.median(times["python -c pass"])
    cpu_base = statistics.median(cpu["python -c pass"])
    print(f"{'':18} {'wall':>10} {'ratio':>6}   {'cpu':>8} {'ratio':>6}")
    print(
        f"{'python -c pass':18} {baseline * 1000:7.1f} ms {1:5.1f}×   "
        f"{cpu_base * 1000:5.1f} ms {1:5.1f}×   (baseline)"
    )
    held = True
    for name in list(commands)[1:]:
        median = statistics.median(times[name])
        used = statistics.median(cpu[name])
        ok = median < GOAL_SEC
        held &= ok
        print(
            f"{name:18} {median * 1000:7.1f} ms {median / baseline:5.1f}×   "
            f"{used * 1000:5.1f} ms {used / cpu_base:5.1f}×   "
            f"goal: wall under {GOAL_SEC * 1000:.0f} ms — {'holds' if ok else 'missed'}"
        )
    print("goal: " + ("holds for both commands" if held else "missed"))


if __name__ == "__main__":
    main()
