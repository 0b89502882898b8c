"""Parse peers: shoemaker's per-line stream-json path against its peers, on the same lines.

    uv run python benchmarks/parse_peers.py [--lines 200000] [--repeat 5] [--profile]

The corpus is the recorded transcripts in tests/fixtures/stream-json (and, when present,
../shared/fixtures/stream-json beside the clone; or the directories given with --fixtures),
their non-blank lines cycled to --lines. On it, interleaved, each --repeat times:

- ``json.loads`` alone, the baseline, and ``orjson.loads`` alone;
- claude-agent-sdk's ``parse_message(json.loads(line))``, the peer (a line it rejects is
  counted and skipped);
- shoemaker's per-line path as the runner runs it: the line's ``\\r`` stripped, a blank
  line skipped, ``SummaryBuilder.feed`` (parse and run summary), the line kept for the
  read's batch (its parsed tree let go). Nothing is condensed there: what shows a line parses
  and condenses it, when it shows it;
- the same with every line condensed too (``condense`` of its event, or the excerpt of a
  line that is not JSON), what a view that shows every line adds (the story printer).

Times are CPU time of the benchmark's thread (a loaded machine's waits do not count), medians
over the passes; they and the ratios are printed, then the goals: the per-line path at least
2× the SDK's ``parse_message`` and at least 1.5× ``json.loads`` alone, checked for the path as
the runner runs it and printed for the one that condenses every line. ``--profile`` adds
where the time goes by stage, condensing every line (cProfile). ``--strict`` exits 1 when a
goal of the runner's path is missed.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import json
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from shoemaker.agents.runner import READ_CHUNK
from shoemaker.agents.streamjson import SummaryBuilder, condense

REPO = Path(__file__).resolve().parents[1]
FIXTURES = (
    REPO / "tests" / "fixtures" / "stream-json",
    REPO.parent / "shared" / "fixtures" / "stream-json",
)
CWD = "/home/user/project"  # a worktree path, as the agent call passes it to condense
INVALID_EXCERPT = 160  # what the agent call shows of a line that is not JSON

GOAL_SDK = 2.0
GOAL_JSON = 1.5

Contestant = Callable[[list[bytes]], int]


def load_corpus(dirs: Sequence[Path], lines: int) -> tuple[list[bytes], int, int]:
    """The non-blank lines of every ``*.jsonl`` in ``dirs`` (a file found twice read once),
    cycled to ``lines``; with how many distinct lines and files they came from."""
    seen: set[bytes] = set()
    distinct: list[bytes] = []
    files = 0
    for folder in dirs:
        for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
            data = path.read_bytes()
            digest = hashlib.sha256(data).digest()
            if digest in seen:
                continue
            seen.add(digest)
            files += 1
            distinct.extend(line for line in data.split(b"\n") if line.strip())
    if not distinct:
        raise SystemExit(f"no stream-json lines in {', '.join(map(str, dirs))}")
    corpus = (distinct * (lines // len(distinct) + 1))[:lines]
    return corpus, len(distinct), files


def stdlib_json(lines: list[bytes]) -> int:
    loads = json.loads
    refused = 0
    for line in lines:
        try:
            loads(line)
        except ValueError:
            refused += 1
    return refused


def orjson_only(lines: list[bytes]) -> int:
    loads = orjson.loads
    refused = 0
    for line in lines:
        try:
            loads(line)
        except ValueError:
            refused += 1
    return refused


def sdk_parse_message() -> Contestant | None:
    try:
        from claude_agent_sdk._internal.message_parser import parse_message
    except ImportError:
        return None

    def run(lines: list[bytes]) -> int:
        rejected = 0
        loads = json.loads
        for line in lines:
            try:
                parse_message(loads(line))
            except Exception:  # a line the SDK does not take: counted, skipped
                rejected += 1
        return rejected

    return run


def shoemaker_path(lines: list[bytes]) -> int:
    """What the runner does with each line it reads (``ProcessRunner._parse``), the lines of
    one read of ``READ_CHUNK`` bytes at a time; returns the lines parsed. The agent call then
    emits each read's batch as one event, uncondensed, let go once delivered."""
    builder = SummaryBuilder()
    feed = builder.feed
    parsed = 0
    per_read = max(1, READ_CHUNK * len(lines) // (sum(map(len, lines)) + len(lines) or 1))
    for at in range(0, len(lines), per_read):
        batch: list[bytes] = []
        for raw in lines[at : at + per_read]:
            line = raw.rstrip(b"\r")  # the same object when there is nothing to strip
            if not line or line.isspace():
                continue
            feed(line)
            batch.append(line)
        parsed += len(batch)
    builder.summary()
    return parsed


def shoemaker_condensing(lines: list[bytes]) -> int:
    """The runner's path with every line condensed as well, as a view that shows every line
    does (returns how many lines would be shown)."""
    builder = SummaryBuilder()
    shown = 0
    for raw in lines:
        line = raw.rstrip(b"\r")
        if not line or line.isspace():
            continue
        event = builder.feed(line)
        if event is None:
            line[:INVALID_EXCERPT].decode("utf-8", "replace")
            shown += 1
        elif condense(event, CWD) is not None:
            shown += 1
    builder.summary()
    return shown


def measure(
    contestants: dict[str, Contestant], corpus: list[bytes], repeat: int, chunk: int = 10_000
) -> tuple[dict[str, float], dict[str, int]]:
    """Median CPU seconds per contestant over ``repeat`` passes of the corpus, and what each
    returned in the last pass (summed). Each pass goes through the corpus a chunk at a time,
    every contestant on each chunk in an order that rotates, so that a burst of load on the
    machine falls on all of them alike; CPU time of this thread, not wall time, so that time
    the process waits for a core does not count."""
    times: dict[str, list[float]] = {name: [0.0] * repeat for name in contestants}
    results: dict[str, int] = {}
    names = list(contestants)
    parts = [corpus[at : at + chunk] for at in range(0, len(corpus), chunk)]
    for round_ in range(repeat):
        results = dict.fromkeys(names, 0)
        gc.collect()
        for index, part in enumerate(parts):
            shift = (round_ + index) % len(names)
            for name in names[shift:] + names[:shift]:
                started = time.thread_time()
                results[name] += contestants[name](part)
                times[name][round_] += time.thread_time() - started
    return {name: statistics.median(t) for name, t in times.items()}, results


def stage_profile(corpus: list[bytes]) -> list[tuple[str, float]]:
    """Shares of the time by stage of the per-line path with every line condensed, from
    cProfile's cumulative times."""
    profiler = cProfile.Profile()
    profiler.runcall(shoemaker_condensing, corpus)
    stats: dict[tuple[str, int, str], Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]

    def cumulative(match: Callable[[str, str], bool]) -> float:
        return sum(row[3] for (file, _, func), row in stats.items() if match(file, func))

    total = cumulative(lambda file, func: func == "shoemaker_condensing")
    feed = cumulative(lambda file, func: func == "feed")
    condensing = cumulative(lambda file, func: func == "condense")
    # Decoding: the parser's fast decoder, and json.loads (which the old parser called for
    # every line, the new one only for a line the fast decoder refuses).
    decoding = cumulative(
        lambda file, func: (
            (func == "decode_fast" and file.endswith("jsonline.py"))
            or (func == "loads" and file.endswith("json/__init__.py"))
        )
    )
    return [
        ("JSON decode", decoding / total),
        ("run summary and event (feed, less decode)", (feed - decoding) / total),
        ("condense", condensing / total),
        ("the loop, freeing each line's tree", (total - feed - condensing) / total),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--fixtures", type=Path, action="append", help="corpus directory")
    parser.add_argument("--profile", action="store_true", help="the path's time by stage")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a goal is missed")
    args = parser.parse_args(argv)
    corpus, distinct, files = load_corpus(args.fixtures or FIXTURES, args.lines)
    size = sum(map(len, corpus))
    print(
        f"corpus: {len(corpus):,} lines ({distinct} distinct, from {files} transcripts), "
        f"{size / 1e6:.1f} MB; medians of {args.repeat} interleaved passes, CPU time"
    )

    path = "shoemaker: parse + summary (the runner's per-line path)"
    contestants: dict[str, Contestant] = {
        "json.loads": stdlib_json,
        "orjson.loads": orjson_only,
    }
    sdk = sdk_parse_message()
    if sdk is not None:
        contestants["claude-agent-sdk: parse_message(json.loads(line))"] = sdk
    contestants[path] = shoemaker_path
    condensing = "shoemaker: parse + summary + condense every line (a view of every line)"
    contestants[condensing] = shoemaker_condensing
    medians, results = measure(contestants, corpus, args.repeat)

    base = medians["json.loads"]
    sdk_name = next((name for name in medians if name.startswith("claude-agent-sdk")), None)
    width = max(map(len, medians))
    print(f"{'':{width}}  {'CPU':>9}  {'lines/s':>11}  {'× json':>7}  {'× sdk':>7}")
    for name, seconds in medians.items():
        vs_sdk = f"{medians[sdk_name] / seconds:6.2f}×" if sdk_name else "      —"
        print(
            f"{name:{width}}  {seconds:8.3f}s  {len(corpus) / seconds:11,.0f}  "
            f"{base / seconds:6.2f}×  {vs_sdk}"
        )
    if sdk_name:
        print(f"lines the SDK rejected (skipped): {results[sdk_name]:,}")
    else:
        print("claude-agent-sdk is not installed (uv sync installs it): its goal is not checked")

    missed = False
    peers = [("json.loads alone", base, GOAL_JSON)]
    if sdk_name:
        peers.insert(0, ("the SDK's parse_message", medians[sdk_name], GOAL_SDK))
    for row, label in ((path, "as the runner runs it"), (condensing, "condensing every line")):
        for what, peer, goal in peers:
            ratio = peer / medians[row]
            holds = ratio >= goal
            missed |= not holds and row == path
            print(
                f"goal: the per-line path ({label}) ≥ {goal:.1f}× {what}: "
                f"measured {ratio:.2f}× — " + ("holds" if holds else "MISSED")
            )

    if args.profile:
        print("where the time goes, condensing every line (cProfile, cumulative by stage):")
        for stage, share in stage_profile(corpus):
            print(f"  {stage:44} {share:6.1%}")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
