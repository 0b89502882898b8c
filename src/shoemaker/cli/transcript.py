"""``transcript``: the summary of a stream-json transcript file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shoemaker.cli.common import CliError


def cmd_transcript(args: argparse.Namespace) -> int:
    from shoemaker.agents.adapters import adapter_for

    adapter = adapter_for(getattr(args, "agent", "claude"))
    path = Path(args.file)
    try:
        summary = adapter.summarize_file(path)
    except FileNotFoundError:
        raise CliError(f"{path}: no such file; give a stream-json transcript file") from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a directory; give a stream-json transcript file") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot be read ({exc.strerror}); check the path") from None
    if summary.lines and summary.bad_lines == summary.lines:
        raise CliError(
            f"{path}: none of its {summary.lines} line(s) is stream-json (JSON objects in "
            "UTF-8); give a transcript written with --output-format stream-json"
            + (" (claude) or `codex exec --json`" if adapter.kind == "codex" else "")
        )
    if args.json:
        print(json.dumps(summary.as_json(), indent=2, allow_nan=False))
    else:
        print(adapter.format_summary(summary))
    return 0
