"""The command: the CLI's checks before it starts, stream-json or only the final result."""

from __future__ import annotations

import json
import os
import signal
import sys

from shoemaker.agents.rehearsal.args import Args, parse_args
from shoemaker.agents.rehearsal.outcomes import run


def _on_sigterm(signum: int, frame: object) -> None:
    # The real CLI exits 143 on SIGTERM without a result line.
    sys.stdout.flush()
    os._exit(143)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.output_format == "stream-json" and not args.verbose:
        sys.stderr.write(
            "Error: When using --print, --output-format=stream-json requires --verbose\n"
        )
        return 1
    if args.skip_permissions and os.geteuid() == 0 and os.environ.get("IS_SANDBOX") != "1":
        sys.stderr.write(
            "--dangerously-skip-permissions cannot be used with root/sudo privileges for "
            "security reasons\n"
        )
        return 1
    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    if args.output_format != "stream-json":
        return _plain(args, prompt)
    return run(args, prompt, os.getcwd())


def _plain(args: Args, prompt: str) -> int:
    """``--output-format text|json``: act the same, print only the final result."""
    real_stdout = sys.stdout
    lines: list[str] = []

    class Capture:
        def write(self, text: str) -> None:
            lines.append(text)

        def flush(self) -> None:
            pass

    sys.stdout = Capture()
    try:
        code = run(args, prompt, os.getcwd())
    finally:
        sys.stdout = real_stdout
    results = [
        json.loads(x) for x in "".join(lines).splitlines() if x.startswith('{"type": "result"')
    ]
    if results:
        last = results[-1]
        print(json.dumps(last) if args.output_format == "json" else last.get("result", ""))
    return code
