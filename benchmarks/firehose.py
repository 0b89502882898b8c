"""A stand-in agent for benchmarks: stream-json lines at a fixed rate, then a result.

    python firehose.py --rate 2000 --seconds 5

Accepts and ignores the claude CLI's arguments; the prompt on stdin is read and dropped.
Lines cycle through assistant text, tool_use and tool_result shapes like a real run's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--seconds", type=float, default=5)
    args, _ = parser.parse_known_args()
    sys.stdin.read()
    shapes = [
        {
            "type": "assistant",
            "message": {
                "id": "m",
                "content": [
                    {"type": "text", "text": "Working through the module, one function at a time."}
                ],
            },
        },
        {
            "type": "assistant",
            "message": {
                "id": "m",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "t",
                        "name": "Read",
                        "input": {"file_path": "src/x.py"},
                    }
                ],
            },
        },
        {
            "type": "user",
            "message": {
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": "def f():\n    return 1\n",
                    }
                ]
            },
        },
    ]
    lines = [json.dumps(s) + "\n" for s in shapes]
    out = sys.stdout
    out.write(
        json.dumps({"type": "system", "subtype": "init", "cwd": ".", "model": "bench"}) + "\n"
    )
    total = int(args.rate * args.seconds)
    tick = 0.01  # write in 10 ms batches, like a busy agent would flush
    per_tick = max(1, int(args.rate * tick))
    start = time.monotonic()
    sent = 0
    while sent < total:
        batch = min(per_tick, total - sent)
        out.write("".join(lines[(sent + i) % 3] for i in range(batch)))
        out.flush()
        sent += batch
        delay = start + sent / args.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    out.write(
        json.dumps(
            {
                "type": "result",
                "subtype": "success",
                "is_error": False,
                "num_turns": 1,
                "total_cost_usd": 0.0,
                "usage": {},
            }
        )
        + "\n"
    )
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
