"""Record the codex transcripts in tests/fixtures/codex/ from the real CLI and the mock.

    uv run python tests/support/record_codex.py [CODEX]

Each scenario runs ``codex exec --json`` as shoemaker's codex adapter launches it, against the
loopback Responses API mock, in a scratch git repository, and keeps its stdout. Thread ids,
temporary paths and the mock's port vary from one recording to the next; the unit tests do not
depend on them. ``unknown-events.jsonl`` is written by hand (types and fields no version
printed yet) and is not re-recorded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from shoemaker.agents.codex import CodexAdapter
from shoemaker.config import AgentConfig
from shoemaker.mocks.responses import MockResponses, Turn, add_file, message, mock_responses, shell

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "codex"


def _run(
    codex: str, api: MockResponses, home: Path, work: Path, extra: list[str], stop: bool = False
) -> bytes:
    adapter = CodexAdapter()
    env = {**os.environ, "OPENAI_BASE_URL": api.url, "OPENAI_API_KEY": "sk-test-0000000000"}
    agent = AgentConfig(kind="codex", command=codex, model="gpt-5.5")
    launch = adapter.launch(agent, env, home, "", home.parent)
    proc = subprocess.Popen(
        [*launch.argv, *extra],
        cwd=work,
        env={**env, **launch.env},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"Create hello.txt, then say so.")
    proc.stdin.close()
    if stop:
        api.wait_for(bool)
        os.killpg(proc.pid, signal.SIGINT)
    out = proc.stdout.read()
    proc.wait(120)
    return out


def main(codex: str) -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        work, home = Path(scratch) / "work", Path(scratch) / "home"
        work.mkdir()
        subprocess.run(["git", "init", "-q", str(work)], check=True)
        with mock_responses() as api:
            api.script(
                Turn([shell("ls")], reasoning_tokens=10),
                Turn([add_file("hello.txt", "hello from codex")]),
                Turn([message("Created hello.txt.")]),
            )
            first = _run(codex, api, home, work, [])
            (FIXTURES / "write-file.jsonl").write_bytes(first)
            thread = first.split(b'"thread_id":"')[1].split(b'"')[0].decode()
            api.script(Turn([message("Still there.")], input_tokens=3000, cached_tokens=2000))
            resumed = _run(codex, api, home, work, ["resume", thread])
            (FIXTURES / "resumed.jsonl").write_bytes(resumed)
            api.script(*[Turn(status=401)] * 6)
            (FIXTURES / "unauthorized.jsonl").write_bytes(_run(codex, api, home, work, []))
            release = threading.Event()
            api.script(Turn([message("never sent")], hold=release))
            with api.lock:
                api.requests.clear()
            (FIXTURES / "interrupted.jsonl").write_bytes(
                _run(codex, api, home, work, [], stop=True)
            )
            release.set()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / ".tools/codex/node_modules/.bin/codex"))
