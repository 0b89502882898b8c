"""One line of JSON decoded fast, with exactly the outcome of the standard library's decoder.

orjson decodes a stream-json line several times faster than :func:`json.loads`, but the two
part ways on lines an agent rarely prints and a hostile one may: orjson refuses ``NaN`` and
``Infinity``, numbers that overflow to infinity, lone surrogates, a byte-order mark and nesting
beyond its limit, and turns integers beyond 64 bits into floats. A refused line, and a line
that may hold such an integer, is decoded again by :func:`json.loads`, so that every line
decodes (or fails to) exactly as it always did.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

import orjson

BAD: Final = object()
"""What :func:`decode` returns for a line that is not JSON."""

# orjson gives a float for an integer outside [-2**63, 2**64 - 1], which takes 19 digits or
# more: a line with 19 digits in a row is decoded again, whether they are a number or in a
# string. A line up to _EXACT_UP_TO bytes is looked through at once; in a longer one such a
# run covers two positions a multiple of 9 apart, so every 9th byte is sampled first and only
# the windows around candidates are looked through, until there are too many of them.
_DIGITS = bytes.maketrans(b"0123456789", b"0" * 10)
_RUN = b"0" * 19
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
_EXACT_UP_TO = 64 * 1024
_STRIDE = 9
_loads = orjson.loads
_Refused = orjson.JSONDecodeError


def decode(line: bytes | str) -> Any:
    """The JSON value on ``line``, or :data:`BAD` for a line that is not JSON (invalid UTF-8,
    nested deeper than :func:`json.loads` can go, or no JSON at all)."""
    try:
        value = _loads(line)
    except _Refused:
        return _decode_slowly(line)
    if type(line) is bytes and len(line) <= _EXACT_UP_TO:  # most lines: checked at once
        return _decode_slowly(line) if _RUN in line.translate(_DIGITS) else value
    raw = line.encode() if isinstance(line, str) else line  # orjson took it: it encodes
    if len(raw) <= _EXACT_UP_TO:
        long_integer = _RUN in raw.translate(_DIGITS)
    else:
        long_integer = _may_hold_long_integer(raw)
    return _decode_slowly(line) if long_integer else value


def _decode_slowly(line: bytes | str) -> Any:
    try:
        return json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return BAD


def _may_hold_long_integer(raw: bytes) -> bool:
    """Whether a long ``raw`` has 19 digits in a row."""
    sampled = raw[::_STRIDE].translate(_DIGITS)
    at = sampled.find(b"00")
    checks = 16 + len(raw) // 1024
    while at >= 0:
        start = at * _STRIDE
        # Any run of 19 digits through ``start`` and ``start + 9`` lies in this window.
        if _LONG_DIGITS.search(raw, max(0, start - 9), start + 19):
            return True
        checks -= 1
        if checks == 0:  # digits everywhere: look through it all at once
            return _RUN in raw.translate(_DIGITS)
        at = sampled.find(b"00", at + 1)
    return False
