"""benchmarks/parse_peers.py runs, on a tiny corpus, and measures what the runner does."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from conftest import REPO_ROOT
from shoemaker.agents.streamjson import SummaryBuilder, condense

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "stream-json"
SAMPLE = "slopus__happy-cli__sample-error-edit-and-multi-edit.jsonl"


@pytest.fixture(scope="module")
def peers() -> ModuleType:
    path = REPO_ROOT / "benchmarks" / "parse_peers.py"
    spec = importlib.util.spec_from_file_location("parse_peers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(FIXTURES / SAMPLE, folder / SAMPLE)
    shutil.copy(FIXTURES / SAMPLE, folder / "the-same-again.jsonl")  # read once
    # Two lines the SDK rejects (not JSON; an assistant line without its message), one it
    # skips (a type it does not know), and a blank line that is no line at all.
    (folder / "odd.jsonl").write_bytes(b'not json\n{"type":"assistant"}\n\n{"type":"brand_new"}\n')
    return folder


def test_the_corpus_is_cycled_to_the_lines_asked_for(peers: ModuleType, corpus_dir: Path) -> None:
    corpus, distinct, files = peers.load_corpus([corpus_dir, corpus_dir / "absent"], 100)
    sample = (FIXTURES / SAMPLE).read_bytes().splitlines()
    assert (len(corpus), distinct, files) == (100, len(sample) + 3, 2)
    assert corpus[: len(sample) + 3] == [
        b"not json",
        b'{"type":"assistant"}',
        b'{"type":"brand_new"}',
        *sample,
    ]
    with pytest.raises(SystemExit, match="no stream-json lines"):
        peers.load_corpus([corpus_dir / "absent"], 10)


def test_the_measured_path_is_the_runners(peers: ModuleType, corpus_dir: Path) -> None:
    corpus, _, _ = peers.load_corpus([corpus_dir], 60)
    builder = SummaryBuilder()
    events = [builder.feed(line) for line in corpus]
    shown = sum(1 for e in events if e is None or condense(e, peers.CWD) is not None)
    assert peers.shoemaker_condensing(corpus) == shown > 0
    assert peers.shoemaker_path(corpus) == len(corpus) > shown  # every line parsed, none shown
    sdk = peers.sdk_parse_message()
    assert sdk is not None and sdk(corpus) == 2 * corpus.count(b"not json")


def test_one_command_prints_the_figures_and_the_goals(
    peers: ModuleType, corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--fixtures", str(corpus_dir), "--lines", "300", "--repeat", "2", "--profile"]
    assert peers.main(argv) == 0
    out = capsys.readouterr().out
    assert "corpus: 300 lines (15 distinct, from 2 transcripts)" in out
    for name in ("json.loads", "orjson.loads", "parse_message(json.loads(line))"):
        assert name in out
    assert "shoemaker: parse + summary (the runner's per-line path)" in out
    assert "shoemaker: parse + summary + condense every line" in out
    assert "lines the SDK rejected (skipped): 40" in out  # 2 of each 15 lines
    goals = [line for line in out.splitlines() if line.startswith("goal:")]
    assert len(goals) == 4
    assert all(line.endswith(("— holds", "— MISSED")) for line in goals)
    assert "as the runner runs it" in goals[0] and "as the runner runs it" in goals[1]
    assert "measured" in goals[0] and "2.0× the SDK's parse_message" in goals[0]
    assert "1.5× json.loads alone" in goals[1]
    for stage in ("JSON decode", "run summary and event", "condense", "the loop"):
        assert stage in out


def test_strict_exits_non_zero_when_a_goal_is_missed(
    peers: ModuleType, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["--fixtures", str(corpus_dir), "--lines", "100", "--repeat", "1"]
    monkeypatch.setattr(peers, "GOAL_JSON", 1000.0)
    assert peers.main(argv) == 0
    assert peers.main([*argv, "--strict"]) == 1
