"""What every configuration section shares: strictness about unknown keys, and durations
written as people write them."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict


class _Strict(BaseModel):
    # Unknown keys are almost always typos; refusing them names the field to fix.
    model_config = ConfigDict(extra="forbid", validate_default=True)


_DURATION = re.compile(r"^\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")


def parse_duration(value: Any) -> float:
    """Seconds of a duration written as a number of seconds or as ``2h``, ``90m``, ``1h30m``,
    ``45s`` (0: no limit)."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 90m, 2h or 1h30m (0: no limit)")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None or not any(match.groups()):
            raise ValueError("must be a duration such as 90m, 2h or 1h30m (0: no limit)")
        h, m, s = (int(g or 0) for g in match.groups())
        seconds = float(h * 3600 + m * 60 + s)
    if seconds < 0:
        raise ValueError("must not be negative (0: no limit)")
    return seconds
