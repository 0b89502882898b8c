"""``transcript``: the summary of a stream-json transcript file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shoemaker.cli.common import CliError

_WRITTEN_BY = {
    "codex": " (claude) or `codex exec --json`",
    "gemini": " (claude) or `gemini -o stream-json`",
}


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
            + _WRITTEN_BY.get(adapter.kind, "")
        )
    _price(summary, args)
    if args.json:
        print(json.dumps(summary.as_json(), indent=2, allow_nan=False))
    else:
        print(adapter.format_summary(summary))
    return 0


def _price(summary: object, args: argparse.Namespace) -> None:
    """A codex or gemini summary's cost from its tokens, at the configured price of the model
    it ran (``--model``, else ``agent.model`` of a configuration of that kind, else the model
    a gemini stream names, when ``prices`` has an entry for it); unknown without one."""
    from shoemaker.agents.protocol import AgentSummary
    from shoemaker.config import load_config

    if not isinstance(summary, AgentSummary) or summary.message_usage is None:
        return
    config = load_config(Path(getattr(args, "directory", ".")))
    model = getattr(args, "model", "") or (
        config.agent.model if config.agent.kind == args.agent else ""
    )
    if not model and summary.model and config.price(summary.model)[0] != "default":
        model = summary.model  # what the stream names, priced only at its own entry
    if not model:
        return
    _, price = config.price(model)
    summary.model = model
    summary.cost_usd = price.cost(summary.message_usage)
    summary.cost_source = "priced_from_tokens"
