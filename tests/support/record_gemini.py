"""Record the gemini transcripts in tests/fixtures/gemini/ from the real CLI and the mock.

    uv run python tests/support/record_gemini.py [GEMINI]

Each scenario runs ``gemini -p "" -o stream-json`` as shoemaker's gemini adapter launches it,
against the loopback Gemini API mock, in a scratch git repository, and keeps its stdout and
exit code (``<name>.exit``). Session ids, timestamps and durations vary from one recording to
the next; the unit tests do not depend on them. ``unknown-events.jsonl`` is written by hand
(types and fields no version printed yet) and is not re-recorded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from shoemaker.agents.gemini import GeminiAdapter
from shoemaker.config import AgentConfig
from shoemaker.mocks.gemini import MockGemini, Turn, mock_gemini, shell, text, write_file

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "gemini"


def _run(
    gemini: str, api: MockGemini, home: Path, work: Path, extra: list[str], stop: bool = False
) -> tuple[bytes, int]:
    adapter = GeminiAdapter()
    env = {
        **os.environ,
        "GOOGLE_GEMINI_BASE_URL": api.url,
        "GEMINI_API_KEY": "AIza-test-0000000000",
    }
    agent = AgentConfig(kind="gemini", command=gemini, model="gemini-2.5-flash")
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
        os.killpg(proc.pid, signal.SIGTERM)
    out = proc.stdout.read()
    return out, proc.wait(120)


def _keep(name: str, recorded: tuple[bytes, int]) -> None:
    (FIXTURES / f"{name}.jsonl").write_bytes(recorded[0])
    (FIXTURES / f"{name}.exit").write_text(f"{recorded[1]}\n")


def main(gemini: str) -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        work, home = Path(scratch) / "work", Path(scratch) / "home"
        work.mkdir()
        home.mkdir()
        subprocess.run(["git", "init", "-q", str(work)], check=True)
        with mock_gemini() as api:
            api.script(
                Turn([shell("ls")]),
                Turn([write_file("hello.txt", "hello from gemini\n")]),
                Turn([text("Created hello.txt.")]),
            )
            _keep("write-file", _run(gemini, api, home, work, []))
            api.script(Turn([text("Still there.")], prompt_tokens=3000, cached_tokens=2000))
            _keep("resumed", _run(gemini, api, home, work, ["--resume", "latest"]))
            api.script(Turn(status=400))
            _keep("api-error", _run(gemini, api, home, work, []))
            api.script(*[Turn(status=401)] * 3)
            _keep("unauthorized", _run(gemini, api, home, work, []))
            release = threading.Event()
            api.script(Turn([text("never sent")], hold=release))
            with api.lock:
                api.requests.clear()
            _keep("interrupted", _run(gemini, api, home, work, [], stop=True))
            release.set()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / ".tools/gemini/node_modules/.bin/gemini"))
