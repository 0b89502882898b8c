"""Shared fixtures: every test runs as on a fresh machine, in temp dirs on tmpfs when possible."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Helpers that are not tests (tests/support/) import as top-level modules: `from projects import …`.
sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
_SHM = Path("/dev/shm")


@pytest.fixture
def fast_tmp() -> Iterator[Path]:
    """A temp dir on tmpfs (about ten times faster for git worktrees), else the default."""
    base = _SHM if _SHM.is_dir() and os.access(_SHM, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="shoemaker-test-", dir=base) as tmp:
        yield Path(tmp)


@pytest.fixture(autouse=True)
def fresh_machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No global git config, no user config or cache dirs, no nested-agent marker."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("CLAUDECODE", raising=False)
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--chaos-runs",
        type=int,
        default=20,
        help="how many SIGKILLs the chaos test delivers in all (default 20)",
    )
    parser.addoption(
        "--chaos-seed",
        type=int,
        default=20261125,
        help="the seed of the chaos test's kill moments (a failure names the one it used)",
    )


#: The hang guard of a test that runs whole generations (``slow``): pytest's default (300 s,
#: pyproject.toml) is reached by the crash-point test alone on two busy cores.
SLOW_TIMEOUT_S = 1200


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))
