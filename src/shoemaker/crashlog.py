"""The traceback of an unexpected error, written where a person (or a bug report) finds it,
with secret values taken out; the terminal gets one line (``cli.main``)."""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from pathlib import Path

from shoemaker.secrets import MIN_LENGTH, Redactor, is_secret_name


def crash_dir() -> Path:
    """Where tracebacks of unexpected errors go: the user cache (a broken project directory
    must not keep the details from being written)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "shoemaker" / "crashes"


def write_crash_log(exc: BaseException, argv: list[str]) -> Path | None:
    """Write ``exc``'s traceback and the command line to a new log file; returns its path,
    or None when no file could be written anywhere."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    text = f"shoemaker {' '.join(argv)}\n\n" + "".join(
        traceback.format_exception(type(exc), exc, exc.__traceback__)
    )
    # A traceback may quote an argv or an environment; secret values stay out of the log.
    env_secrets = {
        value.strip(): name
        for name, value in os.environ.items()
        if is_secret_name(name) and len(value.strip()) >= MIN_LENGTH
    }
    text = Redactor(env_secrets).text(text)
    for directory in (crash_dir(), Path(tempfile.gettempdir())):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"shoemaker-crash-{stamp}-{os.getpid()}.log"
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    return None
